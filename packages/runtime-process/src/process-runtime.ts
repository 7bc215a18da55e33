/**
 * `ProcessRuntime`: game servers as child processes of no one in particular.
 * Each server runs detached (its own session and process group) behind a
 * three-line `sh` shim that records its exit status to a file; its stdout and
 * stderr go to log files and its stdin comes from a named pipe, all in the
 * instance's state folder. So the agent can die and come back: a new runtime
 * over the same state directory finds the server by pid + start time (a reused
 * pid is never mistaken for it), follows its logs, writes to its console and
 * learns its exit code.
 */
import { readFileSync } from "node:fs";
import {
  access,
  constants,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import {
  assertConsoleLine,
  type Clock,
  ConflictError,
  defineRuntimeCapabilities,
  directorySize,
  ExitListeners,
  exitStatusSignal,
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
  type RuntimeStats,
  resolveInstanceDirectory,
  signalExitStatus,
  systemClock,
  UnavailableError,
  ValidationError,
  validateRuntimeSpec,
} from "@orchestrator/core";
import { execa } from "execa";
import { CgroupLimits } from "./cgroup-limits.js";
import { LogFileTailer } from "./log-file-tailer.js";
import {
  isSameProcessAlive,
  parseProcStat,
  readProcStat,
  residentBytes,
  sessionMembers,
  uptimeSeconds,
} from "./proc.js";
import { DEFAULT_SERVER_PATH, type ProcessRuntimeConfig } from "./process-runtime-config.js";

/**
 * The shim: `sh -c SHIM <status file> <cgroup.procs or -> <program> <args...>`.
 * It traps (not ignores: ignored signals would be inherited) the stop signals
 * so that a signal sent to the process group reaches the server while the shim
 * waits, joins the instance's cgroup before the server exists, runs the
 * program (an absolute path, so never a shell builtin or function) with its
 * arguments as positional parameters (never parsed as shell code) and writes
 * the exit status where the next agent can read it.
 */
const SHIM = [
  "trap : HUP INT QUIT TERM USR1 USR2",
  'if [ "$1" != - ]; then echo $$ > "$1" || { echo 125 > "$0"; exit 125; }; fi',
  "shift",
  '"$@"',
  "s=$?",
  'echo "$s" > "$0"',
  'exit "$s"',
].join("\n");

const RECORD_VERSION = 1;
// How often stop/kill look for the exit of a server this object did not spawn.
const ACTIVE_POLL_MS = 25;

interface RunRecord {
  pid: number;
  /** From /proc/<pid>/stat; -1 when the process was gone before it could be read. */
  startTicks: number;
  startedAt: string;
  cgroup: boolean;
}

interface ExitRecord {
  exitCode: number | null;
  signal: string | null;
  at: string;
  requested: boolean;
}

/** `instance.json`: everything needed to find the server again. */
interface InstanceRecord {
  version: number;
  spec: RuntimeInstanceSpec;
  /** The working directory's real path at create time. */
  workingDirectory: string;
  createdAt: string;
  run: RunRecord | null;
  exit: ExitRecord | null;
}

type ShimResult = { exitCode?: number; signal?: string };

/** What this object holds for one instance it has attached (never the source of truth). */
interface Attachment {
  id: string;
  dir: string;
  record: InstanceRecord;
  backlog: LogBacklog;
  tailers: LogFileTailer[];
  /** Set when this object spawned the current run (its exit arrives as an event). */
  child: Promise<unknown> | null;
  poll: NodeJS.Timeout | null;
  finishing: Promise<void> | null;
  exitWaiters: Set<() => void>;
  stopRequested: boolean;
  killRequested: boolean;
  cpuSample: { ticks: number; atMs: number } | null;
}

function isErrno(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === code;
}

/**
 * execa's types accept only the literal descriptors 3-9, but any open file
 * descriptor is handed to spawn() as is (no piping through the agent, which
 * is the point: the server must not depend on the agent being alive).
 */
function descriptor(fd: number): 3 {
  return fd as 3;
}

/** Runs game servers as detached child processes; see the package README. */
export class ProcessRuntime implements Runtime {
  readonly kind = "process";
  private readonly stateDirectory: string;
  private readonly policy: RuntimePolicy;
  private readonly serverPath: string;
  private readonly shell: string;
  private readonly clock: Clock;
  private readonly exitPollIntervalMs: number;
  private readonly maxLogFileBytes: number;
  private readonly exits = new ExitListeners();
  private readonly attachments = new Map<string, Attachment>();
  private readonly attaching = new Map<string, Promise<Attachment | null>>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private cgroup: CgroupLimits | null = null;
  private clockTicks = 100;
  private initializing: Promise<void> | null = null;
  private destroyed = false;

  constructor(private readonly config: ProcessRuntimeConfig) {
    if (!config.stateDirectory || !isAbsolute(config.stateDirectory)) {
      throw new ValidationError([{ path: "stateDirectory", message: "must be an absolute path" }]);
    }
    this.stateDirectory = config.stateDirectory;
    this.policy = { ...config.policy, instanceRoots: config.instanceRoots ?? [] };
    this.serverPath = config.path ?? DEFAULT_SERVER_PATH;
    this.shell = config.shell ?? "/bin/sh";
    this.clock = config.clock ?? systemClock;
    this.exitPollIntervalMs = config.exitPollIntervalMs ?? 500;
    this.maxLogFileBytes = config.maxLogFileBytes ?? 16 * 1024 * 1024;
  }

  /**
   * Stats and input always; resource limits only when a cgroup v2 with the
   * memory controller is usable (known after `init()`; false before).
   */
  get capabilities(): Readonly<RuntimeCapabilities> {
    return defineRuntimeCapabilities({
      supportsStats: true,
      supportsInput: true,
      supportsResourceLimits: this.cgroup !== null,
    });
  }

  /** Creates the state directory, sets up cgroup limits, and re-attaches every known server. */
  init(): Promise<void> {
    this.initializing ??= this.initialize().catch((error: unknown) => {
      this.initializing = null;
      throw error;
    });
    return this.initializing;
  }

  private async initialize(): Promise<void> {
    this.assertUsable();
    await mkdir(this.stateDirectory, { recursive: true, mode: 0o700 });
    await this.takeLock();
    const ticks = await execa("getconf", ["CLK_TCK"], { reject: false });
    const parsed = Number(ticks.stdout);
    if (ticks.exitCode === 0 && Number.isInteger(parsed) && parsed > 0) this.clockTicks = parsed;
    const pidsLimit = this.config.pidsLimit ?? 1024;
    const setting = this.config.cgroup ?? "auto";
    if (setting === "auto") this.cgroup = await CgroupLimits.detect(pidsLimit);
    else if (setting !== false) {
      this.cgroup = await CgroupLimits.open(setting, pidsLimit);
      if (!this.cgroup) {
        throw new ValidationError([
          { path: "cgroup", message: `${setting} offers no writable memory controller` },
        ]);
      }
    }
    for (const id of await this.instanceIds()) await this.attach(id);
  }

  /** Stops following logs and watching exits; servers keep running (see `remove`). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.initializing?.catch(() => {});
    for (const attachment of this.attachments.values()) {
      if (attachment.poll) clearInterval(attachment.poll);
      await Promise.all(attachment.tailers.map((tailer) => tailer.close()));
      attachment.backlog.close();
      for (const wake of attachment.exitWaiters) wake();
    }
    this.attachments.clear();
    this.exits.clear();
    await this.releaseLock();
  }

  async create(
    input: RuntimeInstanceSpec,
    options: { signal?: AbortSignal } = {},
  ): Promise<RuntimeInstanceInfo> {
    await this.ready();
    const spec = validateRuntimeSpec(input, this.policy);
    options.signal?.throwIfAborted();
    return this.withLock(spec.instanceId, async () => {
      const dir = this.instanceDir(spec.instanceId);
      if (await this.attach(spec.instanceId)) {
        throw new ConflictError(`runtime instance '${spec.instanceId}' already exists`);
      }
      const workingDirectory = await resolveInstanceDirectory(spec.workingDirectory, this.policy);
      options.signal?.throwIfAborted();
      try {
        await mkdir(dir, { mode: 0o700 });
      } catch (error) {
        if (isErrno(error, "EEXIST")) {
          // A half-created folder from a crash during create: start it over.
          await rm(dir, { recursive: true, force: true });
          await mkdir(dir, { mode: 0o700 });
        } else throw error;
      }
      try {
        const fifo = await execa("mkfifo", ["-m", "600", join(dir, "stdin")], { reject: false });
        if (fifo.exitCode !== 0) {
          throw new OrchestratorError("INTERNAL", `mkfifo failed: ${fifo.stderr || fifo.message}`);
        }
        const record: InstanceRecord = {
          version: RECORD_VERSION,
          spec,
          workingDirectory,
          createdAt: this.clock.now().toISOString(),
          run: null,
          exit: null,
        };
        await this.writeRecord(dir, record);
        return this.info(this.adopt(spec.instanceId, record));
      } catch (error) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    });
  }

  async start(
    instanceId: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<RuntimeInstanceInfo> {
    await this.ready();
    return this.withLock(instanceId, async () => {
      const attachment = await this.require(instanceId);
      if ((await this.observe(attachment)) === "running") {
        throw new ConflictError(`runtime instance '${instanceId}' is already running`);
      }
      const { spec } = attachment.record;
      const cwd = await resolveInstanceDirectory(spec.workingDirectory, this.policy);
      const program = await this.resolveProgram(spec.command[0]!, cwd);
      options.signal?.throwIfAborted();
      const dir = attachment.dir;
      for (const stream of ["stdout", "stderr"]) {
        // One previous run is kept beside the current one, for post-mortems.
        await rename(join(dir, `${stream}.log`), join(dir, `${stream}.log.1`)).catch(() => {});
      }
      await rm(join(dir, "exit-status"), { force: true });
      const cgroupProcs = this.cgroup ? await this.cgroup.prepare(instanceId, spec.resources) : "-";
      const stdout = await open(join(dir, "stdout.log"), "a", 0o600);
      const stderr = await open(join(dir, "stderr.log"), "a", 0o600);
      // Read-write, so the server's stdin never sees end-of-file and the pipe
      // has a reader for as long as the server lives, whoever writes to it.
      const stdin = await open(join(dir, "stdin"), constants.O_RDWR);
      const startedAt = this.clock.now();
      // Followed before the spawn: a server that exits at once still has every
      // line in the backlog before its exit is announced.
      await this.follow(attachment, true, startedAt.getTime());
      try {
        const subprocess = execa(
          this.shell,
          ["-c", SHIM, join(dir, "exit-status"), cgroupProcs, program, ...spec.command.slice(1)],
          {
            cwd,
            env: { ...spec.env, PATH: this.serverPath },
            extendEnv: false,
            detached: true,
            cleanup: false,
            reject: false,
            buffer: false,
            stdin: descriptor(stdin.fd),
            stdout: descriptor(stdout.fd),
            stderr: descriptor(stderr.fd),
          },
        );
        const pid = subprocess.pid;
        // Read at once, before the event loop could reap a server that exits instantly.
        const stat = pid === undefined ? null : this.readStatNow(pid);
        if (pid === undefined) {
          const result = await subprocess;
          throw new OrchestratorError("INTERNAL", `cannot spawn ${this.shell}: ${result.message}`);
        }
        const run: RunRecord = {
          pid,
          startTicks: stat?.startTicks ?? -1,
          startedAt: startedAt.toISOString(),
          cgroup: this.cgroup !== null,
        };
        attachment.record = { ...attachment.record, run, exit: null };
        attachment.stopRequested = false;
        attachment.killRequested = false;
        attachment.cpuSample = null;
        attachment.child = subprocess;
        subprocess.unref();
        subprocess.then(
          (result) => this.finishRun(attachment, run, result as ShimResult),
          () => this.finishRun(attachment, run, {}),
        );
        await this.writeRecord(dir, attachment.record);
      } catch (error) {
        if (!attachment.record.run || attachment.record.exit) {
          await Promise.all(attachment.tailers.map((tailer) => tailer.close()));
        }
        throw error;
      } finally {
        await Promise.all([stdin.close(), stdout.close(), stderr.close()]);
      }
      return this.info(attachment);
    });
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
    return this.withLock(instanceId, async () => {
      const attachment = await this.require(instanceId);
      if ((await this.observe(attachment)) !== "running") return this.info(attachment);
      const { stop } = attachment.record.spec;
      const run = attachment.record.run!;
      attachment.stopRequested = true;
      let sent = false;
      if (stop.input !== null) {
        sent = await this.writeConsole(attachment, stop.input).then(
          () => true,
          () => false, // an unreadable console: fall back to the signal
        );
      }
      if (!sent) await this.signalGroup(run, stop.signal);
      const timeoutMs = (timeoutSeconds ?? stop.timeoutSeconds) * 1000;
      if (!(await this.awaitExit(attachment, run, timeoutMs))) await this.killRun(attachment, run);
      return this.info(attachment);
    });
  }

  async kill(instanceId: string): Promise<RuntimeInstanceInfo> {
    await this.ready();
    // No lock: a kill must be able to cut a stop's wait short.
    const attachment = await this.require(instanceId);
    if ((await this.observe(attachment)) === "running") {
      await this.killRun(attachment, attachment.record.run!);
    }
    return this.info(attachment);
  }

  async remove(instanceId: string): Promise<void> {
    await this.ready();
    const first = await this.attach(instanceId);
    if (!first) return;
    if ((await this.observe(first)) === "running") await this.killRun(first, first.record.run!);
    await this.withLock(instanceId, async () => {
      const attachment = await this.attach(instanceId);
      if (!attachment) return;
      if ((await this.observe(attachment)) === "running") {
        await this.killRun(attachment, attachment.record.run!);
      }
      await attachment.finishing;
      if (attachment.poll) clearInterval(attachment.poll);
      await Promise.all(attachment.tailers.map((tailer) => tailer.close()));
      attachment.backlog.close();
      this.attachments.delete(instanceId);
      await this.cgroup?.release(instanceId);
      await rm(attachment.dir, { recursive: true, force: true });
    });
  }

  async inspect(instanceId: string): Promise<RuntimeInstanceInfo | null> {
    await this.ready();
    const attachment = await this.attach(instanceId);
    if (!attachment) return null;
    await this.observe(attachment);
    return this.info(attachment);
  }

  async list(labels: Readonly<Record<string, string>> = {}): Promise<RuntimeInstanceInfo[]> {
    await this.ready();
    const result: RuntimeInstanceInfo[] = [];
    for (const id of await this.instanceIds()) {
      const attachment = await this.attach(id);
      if (!attachment) continue;
      const own = attachment.record.spec.labels;
      if (!Object.entries(labels).every(([key, value]) => own[key] === value)) continue;
      await this.observe(attachment);
      result.push(this.info(attachment));
    }
    return result;
  }

  async logs(
    instanceId: string,
    options: RuntimeLogOptions = {},
  ): Promise<AsyncIterable<RuntimeLogLine>> {
    await this.ready();
    const attachment = await this.require(instanceId);
    return attachment.backlog.read(options);
  }

  async stats(instanceId: string): Promise<RuntimeStats> {
    await this.ready();
    const attachment = await this.require(instanceId);
    if ((await this.observe(attachment)) !== "running") {
      throw new ConflictError(`runtime instance '${instanceId}' is not running`);
    }
    const run = attachment.record.run!;
    const members = await sessionMembers(run.pid);
    const ticks = members.reduce(
      (sum, member) => sum + member.cpuTicks + member.childrenCpuTicks,
      0,
    );
    const nowMs = performance.now();
    let cpu: number;
    const previous = attachment.cpuSample;
    if (previous && nowMs > previous.atMs) {
      cpu = (ticks - previous.ticks) / this.clockTicks / ((nowMs - previous.atMs) / 1000);
    } else {
      // First sample: the average since the server started.
      const elapsed = (await uptimeSeconds()) - run.startTicks / this.clockTicks;
      cpu = run.startTicks >= 0 && elapsed > 0 ? ticks / this.clockTicks / elapsed : 0;
    }
    attachment.cpuSample = { ticks, atMs: nowMs };
    const fromCgroup = run.cgroup ? await this.cgroup?.memoryCurrent(instanceId) : null;
    const memoryBytes =
      fromCgroup ??
      (await Promise.all(members.map((member) => residentBytes(member.pid)))).reduce(
        (sum, bytes) => sum + bytes,
        0,
      );
    const disk = await directorySize(attachment.record.workingDirectory);
    return {
      cpu: Math.max(0, cpu),
      memoryBytes,
      diskBytes: disk.bytes,
      at: this.clock.now(),
    };
  }

  async sendInput(instanceId: string, line: string): Promise<void> {
    await this.ready();
    assertConsoleLine(line);
    const attachment = await this.require(instanceId);
    if ((await this.observe(attachment)) !== "running") {
      throw new ConflictError(`runtime instance '${instanceId}' is not running`);
    }
    await this.writeConsole(attachment, line);
  }

  async onExit(
    listener: (exit: RuntimeExit) => void,
    options: { signal?: AbortSignal } = {},
  ): Promise<() => void> {
    await this.ready();
    return this.exits.add(listener, options.signal);
  }

  // --- internals -------------------------------------------------------------

  private assertUsable(): void {
    if (this.destroyed) {
      throw new OrchestratorError("PLUGIN_STATE", "this ProcessRuntime was destroyed");
    }
  }

  private async ready(): Promise<void> {
    this.assertUsable();
    await this.init();
  }

  private async withLock<T>(instanceId: string, task: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(instanceId) ?? Promise.resolve();
    const current = previous.catch(() => {}).then(task);
    const tail = current.catch(() => {});
    this.locks.set(instanceId, tail);
    try {
      return await current;
    } finally {
      if (this.locks.get(instanceId) === tail) this.locks.delete(instanceId);
    }
  }

  private instanceDir(instanceId: string): string {
    return join(this.stateDirectory, instanceId);
  }

  private async instanceIds(): Promise<string[]> {
    const entries = await readdir(this.stateDirectory, { withFileTypes: true }).catch(() => []);
    return entries
      .filter((entry) => entry.isDirectory() && !entry.name.startsWith("."))
      .map((entry) => entry.name)
      .sort();
  }

  private async takeLock(): Promise<void> {
    const path = join(this.stateDirectory, ".runtime.lock");
    const holder = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
    if (Number.isInteger(holder) && holder !== process.pid && (await readProcStat(holder))) {
      throw new ConflictError(
        `another process (pid ${holder}) uses the state directory ${this.stateDirectory}`,
      );
    }
    await writeFile(path, String(process.pid), { mode: 0o600 });
  }

  private async releaseLock(): Promise<void> {
    const path = join(this.stateDirectory, ".runtime.lock");
    const holder = await readFile(path, "utf8").catch(() => "");
    if (holder === String(process.pid)) await rm(path, { force: true });
  }

  private async readRecord(instanceId: string): Promise<InstanceRecord | null> {
    let parsed: InstanceRecord;
    try {
      parsed = JSON.parse(
        await readFile(join(this.instanceDir(instanceId), "instance.json"), "utf8"),
      );
    } catch {
      return null; // missing or half-written by a crash during create: not an instance
    }
    if (parsed?.version !== RECORD_VERSION || parsed.spec?.instanceId !== instanceId) return null;
    try {
      // The state directory is the agent's own, but a record is input all the same.
      parsed.spec = validateRuntimeSpec(parsed.spec, this.policy);
    } catch {
      return null;
    }
    return parsed;
  }

  private async writeRecord(dir: string, record: InstanceRecord): Promise<void> {
    const temporary = join(dir, "instance.json.tmp");
    await writeFile(temporary, JSON.stringify(record), { mode: 0o600 });
    await rename(temporary, join(dir, "instance.json"));
  }

  private adopt(instanceId: string, record: InstanceRecord): Attachment {
    const attachment: Attachment = {
      id: instanceId,
      dir: this.instanceDir(instanceId),
      record,
      backlog: new LogBacklog(this.config.logBacklog),
      tailers: [],
      child: null,
      poll: null,
      finishing: null,
      exitWaiters: new Set(),
      stopRequested: false,
      killRequested: false,
      cpuSample: null,
    };
    this.attachments.set(instanceId, attachment);
    return attachment;
  }

  /** The attachment of a known instance: attaching (logs, exit watching) on first sight. */
  private attach(instanceId: string): Promise<Attachment | null> {
    const known = this.attachments.get(instanceId);
    if (known) return Promise.resolve(known);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(instanceId) || instanceId.includes("..")) {
      return Promise.resolve(null);
    }
    let pending = this.attaching.get(instanceId);
    if (!pending) {
      pending = this.attachFromDisk(instanceId).finally(() => this.attaching.delete(instanceId));
      this.attaching.set(instanceId, pending);
    }
    return pending;
  }

  private async attachFromDisk(instanceId: string): Promise<Attachment | null> {
    const record = await this.readRecord(instanceId);
    if (!record || this.destroyed) return null;
    const attachment = this.adopt(instanceId, record);
    const run = record.run;
    if (run && !record.exit && (await this.isAlive(run))) {
      await this.follow(attachment, true);
      attachment.poll = setInterval(
        () => void this.pollExit(attachment, run),
        this.exitPollIntervalMs,
      );
      attachment.poll.unref();
    } else if (run) {
      await this.follow(attachment, false);
      // Exited while no agent watched: recorded now, not announced (it is history).
      if (!record.exit) await this.finishRun(attachment, run, null, false);
    }
    return attachment;
  }

  private async require(instanceId: string): Promise<Attachment> {
    const attachment = await this.attach(instanceId);
    if (!attachment) throw new NotFoundError("runtime instance", instanceId);
    return attachment;
  }

  /** Reads the log files into the backlog; `live` keeps following them. */
  private async follow(
    attachment: Attachment,
    live: boolean,
    since = attachment.record.run ? new Date(attachment.record.run.startedAt).getTime() : 0,
  ): Promise<void> {
    await Promise.all(attachment.tailers.map((tailer) => tailer.close()));
    const lastBytes = this.config.logBacklog?.maxBytes ?? 1024 * 1024;
    attachment.tailers = (["stdout", "stderr"] as const).map(
      (stream) =>
        new LogFileTailer(join(attachment.dir, `${stream}.log`), {
          follow: live,
          lastBytes,
          maxFileBytes: this.maxLogFileBytes,
          onLine: (line) => {
            // Stamped when read (a file keeps no times), never before the run began.
            const at = new Date(Math.max(this.clock.now().getTime(), since));
            attachment.backlog.push({ stream, line, at });
          },
        }),
    );
    await Promise.all(attachment.tailers.map((tailer) => tailer.start()));
  }

  private readStatNow(pid: number) {
    try {
      return parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
      return null;
    }
  }

  private async isAlive(run: RunRecord): Promise<boolean> {
    if (run.startTicks < 0) return false;
    return isSameProcessAlive(run.pid, run.startTicks);
  }

  /** The instance's status as observed now; records an exit nobody reported yet. */
  private async observe(attachment: Attachment): Promise<RuntimeInstanceInfo["status"]> {
    const run = attachment.record.run;
    if (!run) return "created";
    await attachment.finishing;
    if (attachment.record.exit) return "exited";
    // Also for our own child: /proc knows of the exit before the exit event arrives.
    if (!(await this.isAlive(run))) await this.finishRun(attachment, run, null);
    return attachment.record.exit ? "exited" : "running";
  }

  private async pollExit(attachment: Attachment, run: RunRecord): Promise<void> {
    if (attachment.record.run !== run || attachment.record.exit || attachment.finishing) return;
    if (!(await this.isAlive(run))) await this.finishRun(attachment, run, null);
  }

  /** Waits up to `timeoutMs` for the run to end; true when it did. */
  private async awaitExit(attachment: Attachment, run: RunRecord, timeoutMs: number) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (attachment.record.run !== run || attachment.record.exit) {
        await attachment.finishing;
        return true;
      }
      if (this.destroyed) return false;
      if (!attachment.child && !(await this.isAlive(run))) {
        await this.finishRun(attachment, run, null);
        continue;
      }
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((wake) => {
        const timer = setTimeout(done, attachment.child ? left : Math.min(left, ACTIVE_POLL_MS));
        function done() {
          clearTimeout(timer);
          attachment.exitWaiters.delete(done);
          wake();
        }
        attachment.exitWaiters.add(done);
      });
    }
  }

  private async killRun(attachment: Attachment, run: RunRecord): Promise<void> {
    attachment.killRequested = true;
    await this.signalGroup(run, "SIGKILL");
    if (run.cgroup) await this.cgroup?.killAll(attachment.id);
    if (!(await this.awaitExit(attachment, run, 10_000)) && !this.destroyed) {
      throw new UnavailableError(`runtime instance '${attachment.id}' survived SIGKILL`);
    }
  }

  /** Signals the server's process group, only while the pid is still the server's. */
  private async signalGroup(run: RunRecord, signal: NodeJS.Signals): Promise<void> {
    if (!(await this.isAlive(run))) return;
    try {
      process.kill(-run.pid, signal);
    } catch (error) {
      if (!isErrno(error, "ESRCH")) throw error;
    }
  }

  private async writeConsole(attachment: Attachment, line: string): Promise<void> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      // Non-blocking: a server that never reads its console must not hang the agent.
      handle = await open(join(attachment.dir, "stdin"), constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (error) {
      if (isErrno(error, "ENXIO") || isErrno(error, "ENOENT")) {
        throw new ConflictError(`runtime instance '${attachment.id}' has no console reader`, {
          cause: error,
        });
      }
      throw error;
    }
    try {
      await handle.write(`${line}\n`);
    } catch (error) {
      if (isErrno(error, "EAGAIN")) {
        throw new UnavailableError(`the console of '${attachment.id}' is full (not being read)`, {
          cause: error,
        });
      }
      throw error;
    } finally {
      await handle.close();
    }
  }

  /** Records the end of `run` once, drains its logs, and announces it (unless history). */
  private finishRun(
    attachment: Attachment,
    run: RunRecord,
    shim: ShimResult | null,
    announce = true,
  ): Promise<void> {
    if (attachment.record.run !== run || attachment.record.exit) {
      return attachment.finishing ?? Promise.resolve();
    }
    attachment.finishing ??= (async () => {
      if (attachment.poll) clearInterval(attachment.poll);
      attachment.poll = null;
      await Promise.all(attachment.tailers.map((tailer) => tailer.drain()));
      const status = await readFile(join(attachment.dir, "exit-status"), "utf8").catch(() => "");
      let exitCode: number | null = /^\d+\s*$/.test(status) ? Number.parseInt(status, 10) : null;
      if (exitCode === null) {
        // No status file: the shim itself was killed (by us, or by the OOM killer).
        if (attachment.killRequested || shim?.signal === "SIGKILL") {
          exitCode = signalExitStatus("SIGKILL");
        } else if (typeof shim?.exitCode === "number") exitCode = shim.exitCode;
        else if (shim?.signal) exitCode = signalExitStatus(shim.signal);
      }
      const exit: ExitRecord = {
        exitCode,
        signal: exitStatusSignal(exitCode),
        at: this.clock.now().toISOString(),
        requested: attachment.stopRequested || attachment.killRequested,
      };
      attachment.record = { ...attachment.record, exit };
      attachment.child = null;
      if (this.destroyed) return; // the next runtime over this state records it
      if (this.attachments.get(attachment.id) === attachment) {
        await this.writeRecord(attachment.dir, attachment.record).catch(() => {});
      }
      if (run.cgroup) await this.cgroup?.release(attachment.id);
      for (const wake of [...attachment.exitWaiters]) wake();
      if (announce) {
        this.exits.emit({
          instanceId: attachment.id,
          exitCode: exit.exitCode,
          signal: exit.signal,
          requested: exit.requested,
          at: new Date(exit.at),
        });
      }
    })().finally(() => {
      attachment.finishing = null;
    });
    return attachment.finishing;
  }

  private info(attachment: Attachment): RuntimeInstanceInfo {
    const { spec, run, exit } = attachment.record;
    return {
      instanceId: spec.instanceId,
      status: !run ? "created" : exit ? "exited" : "running",
      labels: spec.labels,
      ports: spec.ports,
      handle: run ? String(run.pid) : "",
      startedAt: run ? new Date(run.startedAt) : null,
      finishedAt: exit ? new Date(exit.at) : null,
      exitCode: exit?.exitCode ?? null,
      signal: exit?.signal ?? null,
    };
  }

  /** An absolute path to the program: relative to the instance dir, or found on `PATH`. */
  private async resolveProgram(program: string, cwd: string): Promise<string> {
    const candidates = program.includes("/")
      ? [resolve(cwd, program)]
      : this.serverPath
          .split(":")
          .filter((dir) => isAbsolute(dir))
          .map((dir) => join(dir, program));
    for (const candidate of candidates) {
      try {
        await access(candidate, constants.X_OK);
        if ((await stat(candidate)).isFile()) return candidate;
      } catch {
        // not this one
      }
    }
    throw new ValidationError([
      {
        path: "command[0]",
        message: program.includes("/")
          ? `${program} is not an executable file`
          : `${program} not found on PATH (${this.serverPath})`,
      },
    ]);
  }
}
