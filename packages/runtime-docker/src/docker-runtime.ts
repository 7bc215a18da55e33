/**
 * `DockerRuntime`: game servers as Docker containers, with the agent's local
 * policy applied to every container whatever the spec asks: never privileged,
 * no host namespaces, all capabilities dropped (an operator-only add-list),
 * no-new-privileges, pids/memory/CPU limits, only the instance directory
 * mounted, images from the allow-list only, an init process so signals work.
 * Containers carry labels, so a new runtime finds them again (`list`) after an
 * agent restart; exits come from the engine's event stream. Every engine call
 * has a deadline: a stopped or hung engine makes calls fail fast with
 * `UNAVAILABLE` (retryable), never hang the agent.
 */
import { posix } from "node:path";
import {
  assertConsoleLine,
  type Clock,
  ConflictError,
  defineRuntimeCapabilities,
  directorySize,
  ExitListeners,
  exitStatusSignal,
  LineSplitter,
  LogBacklog,
  NotFoundError,
  OrchestratorError,
  type Runtime,
  type RuntimeCapabilities,
  type RuntimeExit,
  type RuntimeInstanceInfo,
  type RuntimeInstanceSpec,
  type RuntimeLogLine,
  type RuntimeLogOptions,
  type RuntimePolicy,
  RuntimePolicyError,
  type RuntimePort,
  type RuntimeStats,
  type RuntimeStopSpec,
  resolveInstanceDirectory,
  systemClock,
  UnavailableError,
  ValidationError,
  validateRuntimeSpec,
} from "@orchestrator/core";
import Dockerode from "dockerode";
import { classifyDockerError, dockerStatus } from "./classify-docker-error.js";
import { DockerFrameDecoder, type DockerStreamName } from "./docker-frame-decoder.js";
import {
  DEFAULT_DOCKER_TIMEOUTS,
  type DockerRuntimeConfig,
  REFUSED_CAPABILITIES,
} from "./docker-runtime-config.js";

/** Labels the runtime puts on its containers. */
export const DOCKER_LABELS = Object.freeze({
  managed: "io.orchestrator.managed",
  namespace: "io.orchestrator.namespace",
  instanceId: "io.orchestrator.instance-id",
  /** JSON of what a re-attaching runtime needs: ports, stop, working directory. */
  spec: "io.orchestrator.spec",
  /** Prefix of the spec's own labels (`io.orchestrator.label.<key>`). */
  labelPrefix: "io.orchestrator.label.",
});

interface StoredSpec {
  ports: RuntimePort[];
  stop: RuntimeStopSpec;
  workingDirectory: string;
  /** The real path that is bind-mounted. */
  mountSource: string;
}

/** What this object holds for one instance (never the source of truth: the engine is). */
interface Tracked {
  id: string;
  backlog: LogBacklog;
  pump: { close(): void; done: Promise<void> } | null;
  /** Set while `start()` is opening the log follow: an exit waits for it. */
  starting: Promise<void> | null;
  /** History was read into the backlog (or the runtime saw the run begin). */
  filled: boolean;
  /**
   * Nanosecond timestamp (and text) of the newest line taken from each stream,
   * to skip overlaps between reads. Per stream: the engine may hand out a
   * stderr line after a stdout line stamped later, and one mark for both
   * would drop it.
   */
  lastLogKey: Record<"stdout" | "stderr", bigint>;
  lastLogText: Record<"stdout" | "stderr", string>;
  /**
   * The current run: lines written after the previous run finished belong to
   * it and are dated no earlier than its start (the engine records StartedAt
   * a moment after the process may have printed).
   */
  run: { startedAtMs: number; previousFinishedKey: bigint } | null;
  stopRequested: boolean;
  killRequested: boolean;
  cpuSample: { totalNs: number; atMs: number } | null;
}

type Inspected = Dockerode.ContainerInspectInfo;

const NEVER = "0001-01-01T00:00:00Z";

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms).unref());
}

/** `2026-01-01T10:00:00.123456789Z` → nanoseconds since the epoch (Date keeps only ms). */
function timestampKey(timestamp: string): bigint | null {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(timestamp);
  if (!match) return null;
  const seconds = Date.parse(`${match[1]}${match[3]}`);
  if (Number.isNaN(seconds)) return null;
  const nanos = (match[2] ?? "").padEnd(9, "0");
  return BigInt(seconds) * 1_000_000n + BigInt(nanos);
}

/** Runs game servers as Docker containers; see the package README. */
export class DockerRuntime implements Runtime {
  readonly kind = "docker";
  readonly capabilities: Readonly<RuntimeCapabilities> = defineRuntimeCapabilities({
    supportsStats: true,
    supportsInput: true,
    supportsResourceLimits: true,
  });
  private readonly docker: Dockerode;
  private readonly policy: RuntimePolicy;
  private readonly namespace: string;
  private readonly namePrefix: string;
  private readonly mountPath: string;
  private readonly network: string;
  private readonly capAdd: string[];
  private readonly clock: Clock;
  private readonly requestTimeoutMs: number;
  private readonly actionTimeoutMs: number;
  private readonly exits = new ExitListeners();
  private readonly tracked = new Map<string, Tracked>();
  /**
   * Per container: the start time of the run last seen running and of the last
   * run whose exit was announced (a run is identified by its start time), so
   * that an exit noticed twice (event + stop, or event after removal) is
   * announced once. Bounded: old entries go first.
   */
  private readonly runs = new Map<string, { observed: string | null; announced: string | null }>();
  private events: NodeJS.ReadableStream | null = null;
  private lastEventSeconds = 0;
  private initializing: Promise<void> | null = null;
  private destroyed = false;

  constructor(private readonly config: DockerRuntimeConfig) {
    const issues: { path: string; message: string }[] = [];
    if (!Array.isArray(config.allowedImages)) {
      issues.push({ path: "allowedImages", message: "must be a list (empty: nothing may run)" });
    }
    const capAdd = [...(config.capAdd ?? [])].map((name) =>
      name.toUpperCase().replace(/^CAP_/, ""),
    );
    for (const name of capAdd) {
      if (!/^[A-Z_]+$/.test(name) || REFUSED_CAPABILITIES.includes(name)) {
        issues.push({ path: "capAdd", message: `capability ${name} is refused` });
      }
    }
    const network = config.network ?? "bridge";
    if (network === "host" || network.startsWith("container:")) {
      issues.push({ path: "network", message: `network '${network}' shares a namespace: refused` });
    }
    const mountPath = config.mountPath ?? "/data";
    if (
      !mountPath.startsWith("/") ||
      posix.normalize(mountPath) !== mountPath ||
      mountPath === "/"
    ) {
      issues.push({ path: "mountPath", message: "must be a normalized absolute path, not /" });
    }
    const namespace = config.namespace ?? "default";
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(namespace)) {
      issues.push({ path: "namespace", message: "letters, digits, '_', '.', '-'" });
    }
    if (config.user !== undefined && !/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$/.test(config.user)) {
      issues.push({ path: "user", message: "must be user or user:group" });
    }
    for (const key of ["requestTimeoutMs", "actionTimeoutMs"] as const) {
      const value = config[key];
      if (value !== undefined && !(Number.isInteger(value) && value >= 50 && value <= 600_000)) {
        issues.push({ path: key, message: "must be whole milliseconds from 50 to 600000" });
      }
    }
    if (issues.length > 0) throw new ValidationError(issues);
    this.docker = config.docker ?? new Dockerode();
    this.requestTimeoutMs = config.requestTimeoutMs ?? DEFAULT_DOCKER_TIMEOUTS.requestMs;
    this.actionTimeoutMs = config.actionTimeoutMs ?? DEFAULT_DOCKER_TIMEOUTS.actionMs;
    this.policy = {
      ...config.policy,
      instanceRoots: config.instanceRoots ?? [],
      allowedImages: config.allowedImages,
      allowEmptyCommand: true,
    };
    this.namespace = namespace;
    this.namePrefix = config.namePrefix ?? "orch-";
    this.mountPath = mountPath;
    this.network = network;
    this.capAdd = capAdd;
    this.clock = config.clock ?? systemClock;
  }

  /** Checks the engine answers and starts watching container exits. */
  init(): Promise<void> {
    this.initializing ??= this.initialize().catch((error: unknown) => {
      this.initializing = null;
      throw error;
    });
    return this.initializing;
  }

  private async initialize(): Promise<void> {
    this.assertUsable();
    try {
      // dockerode honours `abortSignal` on ping; its type declarations do not list it.
      const ping = this.docker.ping.bind(this.docker) as unknown as (options: {
        abortSignal: AbortSignal;
      }) => Promise<unknown>;
      await this.call("ping", "request", (abortSignal) => ping({ abortSignal }));
    } catch (error) {
      throw classifyDockerError(error, "ping");
    }
    await this.connectEvents();
    void this.superviseEvents();
  }

  /** Stops watching and following; containers keep running (see `remove`). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.initializing?.catch(() => {});
    this.closeEvents();
    for (const tracked of this.tracked.values()) {
      tracked.pump?.close();
      tracked.backlog.close();
    }
    this.tracked.clear();
    this.exits.clear();
  }

  async create(
    input: RuntimeInstanceSpec,
    options: { signal?: AbortSignal } = {},
  ): Promise<RuntimeInstanceInfo> {
    await this.ready();
    const spec = validateRuntimeSpec(input, this.policy);
    const mountSource = await resolveInstanceDirectory(spec.workingDirectory, this.policy);
    options.signal?.throwIfAborted();
    const name = this.containerName(spec.instanceId);
    const stored: StoredSpec = {
      ports: [...spec.ports],
      stop: spec.stop,
      workingDirectory: spec.workingDirectory,
      mountSource,
    };
    const labels: Record<string, string> = {
      [DOCKER_LABELS.managed]: "true",
      [DOCKER_LABELS.namespace]: this.namespace,
      [DOCKER_LABELS.instanceId]: spec.instanceId,
      [DOCKER_LABELS.spec]: JSON.stringify(stored),
    };
    for (const [key, value] of Object.entries(spec.labels)) {
      labels[`${DOCKER_LABELS.labelPrefix}${key}`] = value;
    }
    const exposed: Record<string, Record<string, never>> = {};
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const port of spec.ports) {
      const key = `${port.containerPort ?? port.hostPort}/${port.protocol}`;
      exposed[key] = {};
      bindings[key] = [{ HostIp: this.config.hostIp ?? "", HostPort: String(port.hostPort) }];
    }
    const memory = Math.round(spec.resources.memoryMb * 1024 * 1024);
    const rotation = this.config.logRotation ?? { maxSize: "10m", maxFiles: 3 };
    const readOnly = this.config.readOnlyRootFilesystem ?? false;
    const body: Dockerode.ContainerCreateOptions = {
      name,
      Image: spec.image!,
      ...(spec.command.length > 0 ? { Cmd: [...spec.command] } : {}),
      Env: Object.entries(spec.env).map(([key, value]) => `${key}=${value}`),
      WorkingDir: this.mountPath,
      Labels: labels,
      ...(this.config.user ? { User: this.config.user } : {}),
      // A console for `sendInput`: stdin stays open between attaches.
      OpenStdin: true,
      StdinOnce: false,
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      StopSignal: spec.stop.signal,
      ExposedPorts: exposed,
      HostConfig: {
        Mounts: [{ Type: "bind", Source: mountSource, Target: this.mountPath, ReadOnly: false }],
        PortBindings: bindings,
        NetworkMode: this.network,
        Privileged: false,
        PidMode: "",
        IpcMode: "private",
        UTSMode: "",
        UsernsMode: "",
        CapDrop: ["ALL"],
        CapAdd: this.capAdd,
        SecurityOpt: ["no-new-privileges:true"],
        PidsLimit: this.config.pidsLimit ?? 512,
        Memory: memory,
        MemorySwap: memory, // no swap beyond the limit
        NanoCpus: Math.max(1, Math.round(spec.resources.cpu * 1e9)),
        Init: true,
        ReadonlyRootfs: readOnly,
        ...(readOnly ? { Tmpfs: { "/tmp": "rw,noexec,nosuid,size=64m" } } : {}),
        RestartPolicy: { Name: "no" }, // the agent's restart policy decides, not the engine
        AutoRemove: false,
        Devices: [],
        LogConfig: {
          Type: "json-file",
          Config: { "max-size": rotation.maxSize, "max-file": String(rotation.maxFiles) },
        },
      },
    };
    // A fresh body per attempt: the client strips the abort signal off the object it gets.
    const createContainer = () =>
      this.call(
        `create ${spec.instanceId}`,
        "action",
        (abortSignal) => this.docker.createContainer({ ...body, abortSignal }),
        options.signal,
      );
    let container: Dockerode.Container;
    try {
      container = await createContainer();
    } catch (error) {
      if (dockerStatus(error) === 409) {
        throw new ConflictError(`runtime instance '${spec.instanceId}' already exists`, {
          cause: error,
        });
      }
      if (dockerStatus(error) !== 404)
        throw classifyDockerError(error, `create ${spec.instanceId}`);
      // The image is missing (the only 404 of a create): pull it if allowed, then once more.
      await this.pullImage(spec.image!, options.signal);
      try {
        container = await createContainer();
      } catch (retryError) {
        throw classifyDockerError(retryError, `create ${spec.instanceId}`);
      }
    }
    this.track(spec.instanceId).filled = true;
    // Built from what was asked rather than read back: one engine round trip fewer.
    return {
      instanceId: spec.instanceId,
      status: "created",
      labels: spec.labels,
      ports: spec.ports,
      handle: container.id,
      startedAt: null,
      finishedAt: null,
      exitCode: null,
      signal: null,
    };
  }

  async start(
    instanceId: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<RuntimeInstanceInfo> {
    await this.ready();
    const found = await this.require(instanceId);
    if (this.statusOf(found) === "running") {
      throw new ConflictError(`runtime instance '${instanceId}' is already running`);
    }
    const stored = this.storedSpec(found);
    // The mount was fixed at create; refuse if the directory was swapped for a link since.
    const source = await resolveInstanceDirectory(stored.workingDirectory, this.policy);
    if (source !== stored.mountSource) {
      throw new RuntimePolicyError([
        {
          kind: "forbidden",
          path: "workingDirectory",
          message: `now resolves to ${source}, not the mounted ${stored.mountSource}`,
        },
      ]);
    }
    options.signal?.throwIfAborted();
    const tracked = this.track(instanceId);
    tracked.stopRequested = false;
    tracked.killRequested = false;
    tracked.cpuSample = null;
    const container = this.docker.getContainer(found.Id);
    const sinceSeconds = Math.floor(this.clock.now().getTime() / 1000) - 1;
    let opened!: () => void;
    tracked.starting = new Promise<void>((resolve) => {
      opened = resolve;
    });
    try {
      try {
        await this.call(
          `start ${instanceId}`,
          "action",
          (abortSignal) => container.start({ abortSignal }),
          options.signal,
        );
      } catch (error) {
        if (dockerStatus(error) === 304) {
          throw new ConflictError(`runtime instance '${instanceId}' is already running`);
        }
        throw classifyDockerError(error, `start ${instanceId}`);
      }
      const started = await this.inspectOrThrow(found.Id, instanceId);
      this.beginRun(tracked, started, found.State.FinishedAt);
      tracked.filled = true;
      await this.openPump(tracked, found.Id, { since: sinceSeconds });
      return this.toInfo(started);
    } finally {
      tracked.starting = null;
      opened();
    }
  }

  async stop(
    instanceId: string,
    options: { timeoutSeconds?: number } = {},
  ): Promise<RuntimeInstanceInfo> {
    await this.ready();
    const timeoutSeconds = options.timeoutSeconds;
    if (
      timeoutSeconds !== undefined &&
      (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 0 || timeoutSeconds > 3600)
    ) {
      throw new ValidationError([{ path: "timeoutSeconds", message: "must be from 0 to 3600" }]);
    }
    const found = await this.require(instanceId);
    if (this.statusOf(found) !== "running") return this.toInfo(found);
    const { stop } = this.storedSpec(found);
    const tracked = this.track(instanceId);
    tracked.stopRequested = true;
    let sent = false;
    if (stop.input !== null) {
      // An unreachable console falls back to the signal.
      sent = await this.writeConsole(found.Id, stop.input).then(
        () => true,
        () => false,
      );
    }
    if (!sent) await this.signal(found.Id, stop.signal);
    const timeoutMs = (timeoutSeconds ?? stop.timeoutSeconds) * 1000;
    if (!(await this.waitNotRunning(found.Id, timeoutMs))) {
      tracked.killRequested = true;
      await this.signal(found.Id, "SIGKILL");
      await this.waitNotRunning(found.Id, 30_000);
    }
    return this.finish(found.Id, instanceId);
  }

  async kill(instanceId: string): Promise<RuntimeInstanceInfo> {
    await this.ready();
    const found = await this.require(instanceId);
    if (this.statusOf(found) !== "running") return this.toInfo(found);
    const tracked = this.track(instanceId);
    tracked.killRequested = true;
    await this.signal(found.Id, "SIGKILL");
    await this.waitNotRunning(found.Id, 30_000);
    return this.finish(found.Id, instanceId);
  }

  async remove(instanceId: string): Promise<void> {
    await this.ready();
    const found = await this.find(instanceId);
    if (found) {
      // Killed first, so its exit is announced as requested before it disappears.
      if (this.statusOf(found) === "running") await this.kill(instanceId);
      try {
        await this.call(`remove ${instanceId}`, "action", (abortSignal) =>
          this.docker.getContainer(found.Id).remove({ force: true, v: true, abortSignal }),
        );
      } catch (error) {
        if (dockerStatus(error) !== 404) throw classifyDockerError(error, `remove ${instanceId}`);
      }
    }
    const tracked = this.tracked.get(instanceId);
    tracked?.pump?.close();
    tracked?.backlog.close();
    this.tracked.delete(instanceId);
  }

  async inspect(instanceId: string): Promise<RuntimeInstanceInfo | null> {
    await this.ready();
    const found = await this.find(instanceId);
    return found ? this.toInfo(found) : null;
  }

  async list(labels: Readonly<Record<string, string>> = {}): Promise<RuntimeInstanceInfo[]> {
    await this.ready();
    const filters = [
      `${DOCKER_LABELS.managed}=true`,
      `${DOCKER_LABELS.namespace}=${this.namespace}`,
      ...Object.entries(labels).map(
        ([key, value]) => `${DOCKER_LABELS.labelPrefix}${key}=${value}`,
      ),
    ];
    let containers: Dockerode.ContainerInfo[];
    try {
      containers = await this.call("list", "request", (abortSignal) =>
        this.docker.listContainers({
          all: true,
          filters: JSON.stringify({ label: filters }),
          abortSignal,
        }),
      );
    } catch (error) {
      throw classifyDockerError(error, "list");
    }
    const infos = await Promise.all(
      containers.map((container) => this.inspectById(container.Id).catch(() => null)),
    );
    return infos
      .filter((info): info is Inspected => info !== null && this.isOurs(info))
      .map((info) => this.toInfo(info))
      .sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  }

  async logs(
    instanceId: string,
    options: RuntimeLogOptions = {},
  ): Promise<AsyncIterable<RuntimeLogLine>> {
    await this.ready();
    const following = this.tracked.get(instanceId);
    // Following a running container already: the backlog is current, no engine call needed.
    if (following?.pump && following.filled) return following.backlog.read(options);
    const found = await this.require(instanceId);
    const tracked = this.track(instanceId);
    // First sight of this container (e.g. after an agent restart): its recent
    // history first, so the answer holds it, then a follow from there on.
    if (!tracked.run && this.statusOf(found) === "running") {
      // A running container's FinishedAt is still the previous run's.
      this.beginRun(tracked, found, found.State.FinishedAt);
    }
    if (!tracked.filled && found.State.StartedAt !== NEVER) {
      await this.readHistory(tracked, found.Id);
    }
    tracked.filled = true;
    if (this.statusOf(found) === "running" && !tracked.pump) {
      // Whole seconds: the overlap is skipped by timestamp.
      await this.openPump(tracked, found.Id, {
        since: Number(resumeKey(tracked) / 1_000_000_000n),
      });
    }
    return tracked.backlog.read(options);
  }

  async stats(instanceId: string): Promise<RuntimeStats> {
    await this.ready();
    const found = await this.require(instanceId);
    if (this.statusOf(found) !== "running") {
      throw new ConflictError(`runtime instance '${instanceId}' is not running`);
    }
    const tracked = this.track(instanceId);
    let stats: Dockerode.ContainerStats;
    try {
      // one-shot: no second sample taken by the engine (~1 s); we keep our own.
      stats = await this.call(`stats ${instanceId}`, "request", (abortSignal) =>
        this.docker.getContainer(found.Id).stats({
          stream: false,
          "one-shot": true,
          abortSignal,
        } as {
          stream: false;
          "one-shot": boolean;
        }),
      );
    } catch (error) {
      throw classifyDockerError(error, `stats ${instanceId}`);
    }
    const totalNs = stats.cpu_stats?.cpu_usage?.total_usage ?? 0;
    const nowMs = Date.now();
    const previous = tracked.cpuSample;
    let cpu: number;
    if (previous && nowMs > previous.atMs) {
      cpu = (totalNs - previous.totalNs) / ((nowMs - previous.atMs) * 1e6);
    } else {
      const startedMs = Date.parse(found.State.StartedAt);
      cpu = nowMs > startedMs ? totalNs / ((nowMs - startedMs) * 1e6) : 0;
    }
    tracked.cpuSample = { totalNs, atMs: nowMs };
    const memoryStats = stats.memory_stats ?? { usage: 0 };
    const detail = (memoryStats.stats ?? {}) as Record<string, number | undefined>;
    // As `docker stats` does: the page cache is not the server's memory.
    const cache = detail.inactive_file ?? detail.total_inactive_file ?? 0;
    const memoryBytes = Math.max(0, (memoryStats.usage ?? 0) - cache);
    let rx = 0;
    let tx = 0;
    for (const network of Object.values(stats.networks ?? {})) {
      rx += network.rx_bytes;
      tx += network.tx_bytes;
    }
    const disk = await directorySize(this.storedSpec(found).mountSource);
    return {
      cpu: Math.max(0, cpu),
      memoryBytes,
      networkRxBytes: rx,
      networkTxBytes: tx,
      diskBytes: disk.bytes,
      at: this.clock.now(),
    };
  }

  async sendInput(instanceId: string, line: string): Promise<void> {
    await this.ready();
    assertConsoleLine(line);
    const found = await this.require(instanceId);
    if (this.statusOf(found) !== "running") {
      throw new ConflictError(`runtime instance '${instanceId}' is not running`);
    }
    await this.writeConsole(found.Id, line);
  }

  async onExit(
    listener: (exit: RuntimeExit) => void,
    options: { signal?: AbortSignal } = {},
  ): Promise<() => void> {
    await this.ready();
    return this.exits.add(listener, options.signal);
  }

  /** The container's own address: the port proxy accepts before the server does. */
  async portAddress(instanceId: string, portName: string): Promise<{ host: string; port: number }> {
    await this.ready();
    const found = await this.require(instanceId);
    const port = this.storedSpec(found).ports.find((candidate) => candidate.name === portName);
    if (!port) throw new NotFoundError("port", portName);
    const networks = Object.values(found.NetworkSettings?.Networks ?? {});
    const ip = networks.find((network) => network.IPAddress)?.IPAddress;
    if (!ip) return { host: "127.0.0.1", port: port.hostPort };
    return { host: ip, port: port.containerPort ?? port.hostPort };
  }

  // --- internals -------------------------------------------------------------

  private assertUsable(): void {
    if (this.destroyed) {
      throw new OrchestratorError("PLUGIN_STATE", "this DockerRuntime was destroyed");
    }
  }

  private async ready(): Promise<void> {
    this.assertUsable();
    await this.init();
  }

  /**
   * One engine call with a deadline. Streams count as answered once the
   * engine sends their headers: the deadline never cuts a running stream. A
   * call past its deadline fails with a retryable `UNAVAILABLE`; the caller's
   * own `signal` aborts it as before.
   */
  private async call<T>(
    what: string,
    kind: "request" | "action",
    run: (signal: AbortSignal) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const timeoutMs = kind === "request" ? this.requestTimeoutMs : this.actionTimeoutMs;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    try {
      return await run(signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal);
    } catch (error) {
      if (deadline.signal.aborted && !signal?.aborted) {
        throw new UnavailableError(
          `the Docker engine did not answer ${what} within ${timeoutMs} ms (hung or overloaded)`,
          { cause: error, details: { timeoutMs } },
        );
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  private containerName(instanceId: string): string {
    return `${this.namePrefix}${instanceId}`;
  }

  private backlogLines(): number {
    return this.config.logBacklog?.maxLines ?? 1000;
  }

  private track(instanceId: string): Tracked {
    let tracked = this.tracked.get(instanceId);
    if (!tracked) {
      tracked = {
        id: instanceId,
        backlog: new LogBacklog(this.config.logBacklog),
        pump: null,
        starting: null,
        filled: false,
        lastLogKey: { stdout: 0n, stderr: 0n },
        lastLogText: { stdout: "", stderr: "" },
        run: null,
        stopRequested: false,
        killRequested: false,
        cpuSample: null,
      };
      this.tracked.set(instanceId, tracked);
    }
    return tracked;
  }

  private isOurs(info: Inspected): boolean {
    const labels = info.Config?.Labels ?? {};
    return (
      labels[DOCKER_LABELS.managed] === "true" &&
      labels[DOCKER_LABELS.namespace] === this.namespace &&
      typeof labels[DOCKER_LABELS.instanceId] === "string"
    );
  }

  private async inspectById(id: string): Promise<Inspected | null> {
    try {
      const info = await this.call(`inspect ${id}`, "request", (abortSignal) =>
        this.docker.getContainer(id).inspect({ abortSignal }),
      );
      if (info.State.Running) this.runOf(info.Id).observed = info.State.StartedAt;
      return info;
    } catch (error) {
      if (dockerStatus(error) === 404) return null;
      throw classifyDockerError(error, `inspect ${id}`);
    }
  }

  private async inspectByName(name: string): Promise<Inspected | null> {
    return this.inspectById(name);
  }

  private async inspectOrThrow(id: string, instanceId: string): Promise<Inspected> {
    const info = await this.inspectById(id);
    if (!info) throw new NotFoundError("runtime instance", instanceId);
    return info;
  }

  /** The instance's container, when it is one of ours. */
  private async find(instanceId: string): Promise<Inspected | null> {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(instanceId)) return null;
    const info = await this.inspectByName(this.containerName(instanceId));
    if (!info || !this.isOurs(info)) return null;
    return info.Config.Labels[DOCKER_LABELS.instanceId] === instanceId ? info : null;
  }

  private async require(instanceId: string): Promise<Inspected> {
    const found = await this.find(instanceId);
    if (!found) throw new NotFoundError("runtime instance", instanceId);
    return found;
  }

  private storedSpec(info: Inspected): StoredSpec {
    try {
      return JSON.parse(info.Config.Labels[DOCKER_LABELS.spec] ?? "") as StoredSpec;
    } catch (error) {
      throw new OrchestratorError("INTERNAL", `container ${info.Id} has an unreadable spec label`, {
        cause: error,
      });
    }
  }

  private statusOf(info: Inspected): RuntimeInstanceInfo["status"] {
    const state = info.State.Status;
    if (state === "created") return "created";
    if (state === "running" || state === "paused" || state === "restarting") return "running";
    return "exited";
  }

  private toInfo(info: Inspected): RuntimeInstanceInfo {
    const labels: Record<string, string> = {};
    for (const [key, value] of Object.entries(info.Config.Labels ?? {})) {
      if (key.startsWith(DOCKER_LABELS.labelPrefix)) {
        labels[key.slice(DOCKER_LABELS.labelPrefix.length)] = value;
      }
    }
    const status = this.statusOf(info);
    const exited = status === "exited";
    const exitCode = exited ? info.State.ExitCode : null;
    return {
      instanceId: info.Config.Labels[DOCKER_LABELS.instanceId]!,
      status,
      labels,
      ports: this.storedSpec(info).ports,
      handle: info.Id,
      startedAt:
        info.State.StartedAt && info.State.StartedAt !== NEVER
          ? new Date(info.State.StartedAt)
          : null,
      finishedAt:
        exited && info.State.FinishedAt !== NEVER ? new Date(info.State.FinishedAt) : null,
      exitCode,
      signal: exitStatusSignal(exitCode),
    };
  }

  private async pullImage(image: string, signal?: AbortSignal): Promise<void> {
    if ((this.config.pull ?? "missing") === "never") {
      throw new ValidationError([
        { path: "image", message: `${image} is not present and pulling is off` },
      ]);
    }
    try {
      // Bounded until the engine starts answering; the download itself may take long.
      const stream = await this.call(
        `pull ${image}`,
        "action",
        (abortSignal) => this.docker.pull(image, { abortSignal }),
        signal,
      );
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(stream, (error: Error | null) =>
          error ? reject(error) : resolve(),
        );
      });
    } catch (error) {
      throw classifyDockerError(error, `pull ${image}`);
    }
  }

  private async signal(containerId: string, signal: string): Promise<void> {
    try {
      await this.call(`signal ${containerId}`, "request", (abortSignal) =>
        this.docker.getContainer(containerId).kill({ signal, abortSignal }),
      );
    } catch (error) {
      // 409: it is not running (any more): what we wanted anyway.
      if (dockerStatus(error) !== 409 && dockerStatus(error) !== 404) {
        throw classifyDockerError(error, `signal ${containerId}`);
      }
    }
  }

  /** True when the container stopped within `timeoutMs`. */
  private async waitNotRunning(containerId: string, timeoutMs: number): Promise<boolean> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      await this.docker
        .getContainer(containerId)
        .wait({ condition: "not-running", abortSignal: controller.signal });
      return true;
    } catch (error) {
      if (controller.signal.aborted) return false;
      if (dockerStatus(error) === 404) return true;
      throw classifyDockerError(error, `wait ${containerId}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** After a stop or kill: announces the exit (once) and returns the final state. */
  private async finish(containerId: string, instanceId: string): Promise<RuntimeInstanceInfo> {
    const info = await this.inspectOrThrow(containerId, instanceId);
    if (this.statusOf(info) === "exited") {
      await this.drainLogs(instanceId);
      this.announceExit(instanceId, info.Id, info.State.StartedAt, info.State.ExitCode, info);
    }
    return this.toInfo(info);
  }

  /**
   * Waits (briefly) for the log follow of a stopped container to deliver its
   * last lines, so an exit is announced after the output that preceded it.
   */
  private async drainLogs(instanceId: string): Promise<void> {
    const tracked = this.tracked.get(instanceId);
    // A server that crashes at once may die before start() has opened its follow.
    if (tracked?.starting) await Promise.race([tracked.starting, sleep(2000)]);
    const pump = tracked?.pump;
    if (pump) await Promise.race([pump.done, sleep(2000)]);
  }

  private runOf(containerId: string): { observed: string | null; announced: string | null } {
    let run = this.runs.get(containerId);
    if (!run) {
      run = { observed: null, announced: null };
      this.runs.set(containerId, run);
      if (this.runs.size > 1024) this.runs.delete(this.runs.keys().next().value!);
    }
    return run;
  }

  /**
   * Announces one exit, whether the engine's event or a stop/kill noticed it
   * first. `startedAt` is null when the container is gone already (removed):
   * then the last run seen running is the one that ended.
   */
  private announceExit(
    instanceId: string,
    containerId: string,
    startedAt: string | null,
    exitCode: number | null,
    info: Inspected | null,
  ): void {
    const run = this.runOf(containerId);
    const identity = startedAt ?? run.observed ?? "unknown";
    if (run.announced === identity) return;
    run.announced = identity;
    const tracked = this.tracked.get(instanceId);
    const requested = (tracked?.stopRequested ?? false) || (tracked?.killRequested ?? false);
    if (tracked) {
      tracked.stopRequested = false;
      tracked.killRequested = false;
    }
    const finishedAt = info?.State.FinishedAt;
    this.exits.emit({
      instanceId,
      exitCode,
      signal: exitStatusSignal(exitCode),
      requested,
      at: finishedAt && finishedAt !== NEVER ? new Date(finishedAt) : this.clock.now(),
    });
  }

  private async writeConsole(containerId: string, line: string): Promise<void> {
    let stream: NodeJS.ReadWriteStream;
    try {
      stream = await this.call(`attach ${containerId}`, "request", (abortSignal) =>
        this.docker
          .getContainer(containerId)
          .attach({ stream: true, stdin: true, hijack: true, abortSignal }),
      );
    } catch (error) {
      throw classifyDockerError(error, `attach ${containerId}`);
    }
    try {
      await new Promise<void>((resolve, reject) => {
        stream.once("error", reject);
        // Ending our side does not close the server's stdin (StdinOnce is false).
        stream.end(`${line}\n`, () => resolve());
      });
    } finally {
      (stream as NodeJS.ReadWriteStream & { destroy?: () => void }).destroy?.();
    }
  }

  private beginRun(tracked: Tracked, info: Inspected, previousFinishedAt: string): void {
    const previous = previousFinishedAt === NEVER ? null : timestampKey(previousFinishedAt);
    tracked.run = {
      startedAtMs: Date.parse(info.State.StartedAt),
      previousFinishedKey: previous ?? 0n,
    };
  }

  private takeLogLine(tracked: Tracked, stream: "stdout" | "stderr", raw: string): void {
    const space = raw.indexOf(" ");
    const key = space > 0 ? timestampKey(raw.slice(0, space)) : null;
    if (key === null) {
      tracked.backlog.push({ stream, line: raw, at: this.clock.now() });
      return;
    }
    const line = raw.slice(space + 1);
    // Reads overlap (a pump reopened with `since`): skip what was taken already.
    const last = tracked.lastLogKey[stream];
    if (key < last || (key === last && line === tracked.lastLogText[stream])) return;
    tracked.lastLogKey[stream] = key;
    tracked.lastLogText[stream] = line;
    let atMs = Number(key / 1_000_000n);
    if (tracked.run && key > tracked.run.previousFinishedKey) {
      atMs = Math.max(atMs, tracked.run.startedAtMs);
    }
    tracked.backlog.push({ stream, line, at: new Date(atMs) });
  }

  private decoderFor(tracked: Tracked): { decoder: DockerFrameDecoder; flush(): void } {
    const splitters = {
      stdout: new LineSplitter((line) => this.takeLogLine(tracked, "stdout", line)),
      stderr: new LineSplitter((line) => this.takeLogLine(tracked, "stderr", line)),
    };
    const decoder = new DockerFrameDecoder((name: DockerStreamName, payload) => {
      if (name !== "stdin") splitters[name].push(payload);
    });
    return {
      decoder,
      flush: () => {
        splitters.stdout.flush();
        splitters.stderr.flush();
      },
    };
  }

  /** Follows a running container's output into the backlog until it stops. */
  private async openPump(
    tracked: Tracked,
    containerId: string,
    from: { since: number },
  ): Promise<void> {
    tracked.pump?.close();
    let stream: NodeJS.ReadableStream;
    try {
      // Bounded until the stream opens; it then follows as long as the container runs.
      stream = await this.call(`logs ${containerId}`, "request", (abortSignal) =>
        this.docker.getContainer(containerId).logs({
          follow: true,
          stdout: true,
          stderr: true,
          timestamps: true,
          ...from,
          abortSignal,
        }),
      );
    } catch (error) {
      throw classifyDockerError(error, `logs ${containerId}`);
    }
    const { decoder, flush } = this.decoderFor(tracked);
    let markDone!: () => void;
    const pump = {
      close: () => {
        (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      },
      done: new Promise<void>((resolve) => {
        markDone = resolve;
      }),
    };
    tracked.pump = pump;
    stream.on("data", (chunk: Buffer) => decoder.push(chunk));
    const ended = () => {
      flush();
      if (tracked.pump === pump) tracked.pump = null;
      markDone();
    };
    stream.once("end", ended);
    stream.once("close", ended);
    stream.once("error", ended);
  }

  /** Reads the recent output of a container that is not running. */
  private async readHistory(tracked: Tracked, containerId: string): Promise<void> {
    let buffer: Buffer;
    try {
      buffer = await this.call(`logs ${containerId}`, "request", (abortSignal) =>
        this.docker.getContainer(containerId).logs({
          follow: false,
          stdout: true,
          stderr: true,
          timestamps: true,
          tail: this.backlogLines(),
          abortSignal,
        }),
      );
    } catch (error) {
      throw classifyDockerError(error, `logs ${containerId}`);
    }
    const { decoder, flush } = this.decoderFor(tracked);
    decoder.push(buffer);
    flush();
  }

  // --- exit watching through the engine's event stream ------------------------

  private async connectEvents(): Promise<void> {
    const filters = {
      type: ["container"],
      event: ["die"],
      label: [`${DOCKER_LABELS.managed}=true`, `${DOCKER_LABELS.namespace}=${this.namespace}`],
    };
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.call("events", "request", (abortSignal) =>
        this.docker.getEvents({
          filters: JSON.stringify(filters),
          // After a reconnect, replay what happened while we were away.
          ...(this.lastEventSeconds > 0 ? { since: this.lastEventSeconds } : {}),
          abortSignal,
        } as Dockerode.GetEventsOptions),
      );
    } catch (error) {
      throw classifyDockerError(error, "events");
    }
    this.events = stream;
    let pending = "";
    stream.on("data", (chunk: Buffer) => {
      pending += chunk.toString("utf8");
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        const text = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (text) void this.onEvent(text);
        newline = pending.indexOf("\n");
      }
    });
  }

  /** Reconnects the event stream with backoff whenever it ends, until destroyed. */
  private async superviseEvents(): Promise<void> {
    let delay = 250;
    while (!this.destroyed) {
      const stream = this.events;
      if (stream) {
        await new Promise<void>((resolve) => {
          stream.once("end", resolve);
          stream.once("close", resolve);
          stream.once("error", () => resolve());
        });
      }
      if (this.destroyed) return;
      this.events = null;
      await sleep(delay);
      try {
        await this.connectEvents();
        delay = 250;
      } catch {
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  private closeEvents(): void {
    const stream = this.events as (NodeJS.ReadableStream & { destroy?: () => void }) | null;
    this.events = null;
    stream?.destroy?.();
  }

  private async onEvent(text: string): Promise<void> {
    let event: {
      id?: string;
      time?: number;
      Actor?: { Attributes?: Record<string, string> };
    };
    try {
      event = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof event.time === "number") {
      this.lastEventSeconds = Math.max(this.lastEventSeconds, event.time);
    }
    const attributes = event.Actor?.Attributes ?? {};
    const instanceId = attributes[DOCKER_LABELS.instanceId];
    if (!instanceId || !event.id || this.destroyed) return;
    const info = await this.inspectById(event.id).catch(() => null);
    if (this.destroyed) return;
    if (info && this.statusOf(info) === "running") return; // already started again
    const exitCode = attributes.exitCode === undefined ? null : Number(attributes.exitCode);
    await this.drainLogs(instanceId);
    if (this.destroyed) return;
    this.announceExit(
      instanceId,
      event.id,
      info ? info.State.StartedAt : null,
      info ? info.State.ExitCode : exitCode,
      info,
    );
  }
}

/**
 * Where a reopened log follow starts (whole seconds, so it overlaps): the
 * older of the streams' newest lines, so neither misses a line.
 */
function resumeKey(tracked: Tracked): bigint {
  const { stdout, stderr } = tracked.lastLogKey;
  if (stdout === 0n) return stderr;
  if (stderr === 0n) return stdout;
  // biome-ignore lint/complexity/useMathMinMax: bigints (Math.min takes numbers only)
  return stdout < stderr ? stdout : stderr;
}
