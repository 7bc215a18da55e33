// biome-ignore-all lint/suspicious/noTemplateCurlyInString: templates hold literal ${VARIABLE} placeholders
/**
 * A whole platform made of real processes for fault injection: a Brain
 * (`orchestrator brain`) on its own MariaDB database, agents
 * (`orchestrator agent`) with the process or Docker runtime, templates pushed
 * with `orchestrator template push`. Everything it creates is tracked and
 * removed by `dispose()`, also when a test failed half-way.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { testServiceEnv } from "@orchestrator/core/testing";
import mysql from "mysql2/promise";
import { CliProcess, freePort, waitFor } from "./cli-process.js";

const exec = promisify(execFile);

export const ADMIN_PASSWORD = "resilience-admin-password";

/** Short liveness timings so faults play out in seconds. */
export const TIMINGS = {
  ORCH_HEARTBEAT_INTERVAL_MS: "500",
  ORCH_OFFLINE_AFTER_MS: "3000",
  ORCH_SYNC_WAIT_MS: "500",
} as const;
export const OFFLINE_AFTER_MS = Number(TIMINGS.ORCH_OFFLINE_AFTER_MS);

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

export interface InstanceView {
  id: string;
  name: string;
  state: string;
  nodeId: string | null;
  ports: Record<string, number>;
  templateName: string;
}

export interface NodeView {
  id: string;
  name: string;
  status: string;
}

export interface EventView {
  seq: number;
  from: string;
  to: string;
  reason: string;
}

/** A fresh `orch_r_*` database on the shared MariaDB; `drop()` removes it. */
export async function createDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const base = new URL(testServiceEnv("mysql")!.ORCH_TEST_MYSQL_URL!);
  const name = `orch_r_${randomBytes(5).toString("hex")}`;
  const admin = await mysql.createConnection({
    host: base.hostname,
    port: Number(base.port || 3306),
    user: decodeURIComponent(base.username),
    password: decodeURIComponent(base.password),
  });
  try {
    await admin.query(`CREATE DATABASE \`${name}\``);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const connection = await mysql.createConnection({
        host: base.hostname,
        port: Number(base.port || 3306),
        user: decodeURIComponent(base.username),
        password: decodeURIComponent(base.password),
      });
      try {
        await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await connection.end();
      }
    },
  };
}

export interface TemplateSpec {
  name: string;
  runtime: "process" | "docker";
  /** Extra template.json keys (variables, env, files, ...). */
  extra?: Record<string, unknown>;
  /** Layer files (relative path → content); defaults to the sh test server. */
  files?: Record<string, string>;
}

/**
 * A POSIX sh game server (busybox-compatible): announces readiness on its log,
 * echoes console input, exits 0 on SIGTERM.
 */
export const SH_SERVER = [
  'echo "starting $INSTANCE_NAME"',
  'echo "ready on $PORT"',
  "trap 'echo bye; exit 0' TERM",
  'while read line; do echo "got: $line"; done',
  // stdin closed (should not happen while the runtime keeps it open): stay up.
  "while true; do sleep 1; done",
  "",
].join("\n");

export class Platform {
  readonly brainPort: number;
  brain: CliProcess | null = null;
  token = "";
  private database: { url: string; drop(): Promise<void> } | null = null;
  private readonly agents = new Map<string, AgentHandle>();
  private readonly instanceIds = new Set<string>();

  private constructor(
    readonly dir: string,
    brainPort: number,
    readonly s3Prefix: string,
    readonly databaseKind: "mysql" | "sqlite",
  ) {
    this.brainPort = brainPort;
  }

  /** `sqlite` (a file in the temp folder) needs no service: for faults that are not about the database. */
  static async create(databaseKind: "mysql" | "sqlite" = "mysql"): Promise<Platform> {
    const dir = await mkdtemp(join(tmpdir(), "orch-resilience-"));
    const platform = new Platform(
      dir,
      await freePort(),
      `resilience-${randomBytes(4).toString("hex")}/`,
      databaseKind,
    );
    return platform;
  }

  /** A platform with its Brain running and an admin token: what most tests start from. */
  static async started(
    databaseKind: "mysql" | "sqlite" = "mysql",
    brainEnv: Record<string, string> = {},
  ): Promise<Platform> {
    const platform = await Platform.create(databaseKind);
    try {
      await platform.startBrain(brainEnv);
      await platform.login();
    } catch (error) {
      await platform.dispose(); // its database and temporary folder
      throw error;
    }
    return platform;
  }

  get url(): string {
    return `http://127.0.0.1:${this.brainPort}`;
  }

  /** Uses an existing database (the caller creates and drops it) instead of a fresh `orch_r_*` one. */
  useDatabase(url: string): void {
    this.database = { url, drop: async () => undefined };
  }

  get databaseUrl(): string {
    return this.database!.url;
  }

  brainEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      ORCH_HOST: "127.0.0.1",
      ORCH_PORT: String(this.brainPort),
      ORCH_DATABASE_URL: this.database!.url,
      ORCH_DATA_DIR: join(this.dir, "brain"),
      ORCH_ADMIN_PASSWORD: ADMIN_PASSWORD,
      ORCH_LOG_LEVEL: "error",
      ...TIMINGS,
      ...extra,
    };
  }

  /** Starts (or restarts) the Brain process on the platform's database. */
  async startBrain(extra: Record<string, string> = {}): Promise<CliProcess> {
    this.database ??=
      this.databaseKind === "mysql"
        ? await createDatabase()
        : { url: `sqlite:${join(this.dir, "brain.db")}`, drop: async () => undefined };
    this.brain = await CliProcess.start("brain", ["brain"], this.brainEnv(extra), {
      cwd: this.dir,
      readyText: "Brain running at",
    });
    return this.brain;
  }

  /** Logs in as admin and creates an API token for the bearer-authenticated calls. */
  async login(): Promise<void> {
    const login = await fetch(`${this.url}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }),
    });
    if (login.status !== 200) throw new Error(`login failed: ${login.status}`);
    const session = (await login.json()) as { token: string; csrfToken: string };
    const created = await fetch(`${this.url}/api/v1/tokens`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        cookie: `orch_session=${session.token}`,
        "x-csrf-token": session.csrfToken,
      },
      body: JSON.stringify({ name: `resilience-${randomBytes(3).toString("hex")}` }),
    });
    if (created.status !== 201) throw new Error(`token creation failed: ${created.status}`);
    this.token = ((await created.json()) as { secret: string }).secret;
  }

  async api<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    token = this.token,
  ): Promise<ApiResponse<T>> {
    const response = await fetch(`${this.url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await response.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = text;
    }
    if (method === "POST" && path === "/instances" && response.status === 201) {
      this.instanceIds.add((parsed as { id: string }).id);
    }
    return { status: response.status, headers: response.headers, body: parsed as T };
  }

  async instance(id: string): Promise<InstanceView> {
    const response = await this.api<InstanceView>("GET", `/instances/${id}`);
    if (response.status !== 200) throw new Error(`GET instance ${id}: ${response.status}`);
    return response.body;
  }

  async instances(): Promise<InstanceView[]> {
    return (await this.api<{ items: InstanceView[] }>("GET", "/instances?limit=1000")).body.items;
  }

  async nodes(): Promise<NodeView[]> {
    return (await this.api<{ items: NodeView[] }>("GET", "/nodes")).body.items;
  }

  async node(id: string): Promise<NodeView> {
    const response = await this.api<NodeView>("GET", `/nodes/${id}`);
    if (response.status !== 200) throw new Error(`GET node ${id}: ${response.status}`);
    return response.body;
  }

  async events(id: string): Promise<EventView[]> {
    return (await this.api<{ items: EventView[] }>("GET", `/instances/${id}/events?limit=1000`))
      .body.items;
  }

  async waitForState(id: string, state: string, timeoutMs = 60_000): Promise<InstanceView> {
    return waitFor(
      `instance ${id} ${state}`,
      async () => {
        const instance = await this.instance(id);
        if (state !== "FAILED" && instance.state === "FAILED") {
          throw Object.assign(new Error(`instance ${id} FAILED: ${JSON.stringify(instance)}`), {
            stopWaiting: true,
          });
        }
        return instance.state === state ? instance : null;
      },
      { timeoutMs, context: () => this.diagnostics() },
    );
  }

  async waitForNode(id: string, status: string, timeoutMs = 60_000): Promise<NodeView> {
    return waitFor(
      `node ${id} ${status}`,
      async () => {
        const node = await this.node(id);
        return node.status === status ? node : null;
      },
      { timeoutMs, context: () => this.diagnostics() },
    );
  }

  async createInstance(
    template: string,
    name: string,
    variables: Record<string, unknown> = {},
  ): Promise<string> {
    const created = await this.api("POST", "/instances", { template, name, variables });
    if (created.status !== 201)
      throw new Error(`create ${name}: ${created.status} ${JSON.stringify(created.body)}`);
    return created.body.id as string;
  }

  /** Writes a template folder (template.json + one layer) and pushes it with the CLI. */
  async pushTemplate(
    spec: TemplateSpec,
    /** Push to this S3 (ORCH_S3_* variables) instead of the runtime's default storage. */
    s3Override?: Record<string, string>,
  ): Promise<{ code: number | null; output: string }> {
    const folder = join(this.dir, "sources", spec.name);
    const layer = join(folder, "layers", spec.name);
    await mkdir(layer, { recursive: true });
    for (const [path, content] of Object.entries(spec.files ?? { "server.sh": SH_SERVER })) {
      await mkdir(join(layer, path, ".."), { recursive: true });
      await writeFile(join(layer, path), content);
    }
    const image = testServiceEnv("docker")?.ORCH_TEST_DOCKER_IMAGE;
    const definition = {
      name: spec.name,
      layers: [spec.name],
      runtime:
        spec.runtime === "process"
          ? { process: { command: ["sh", "server.sh"] } }
          : { docker: { image, command: ["sh", "server.sh"] } },
      env: { PORT: "${PORT}", INSTANCE_NAME: "${INSTANCE_NAME}" },
      ports: [{ name: "game", protocol: "tcp" }],
      resources: { memoryMb: 32, cpu: 0.05, diskMb: 5 },
      readiness: { log: "ready on", timeoutSeconds: 30 },
      stop: { input: null, signal: "SIGTERM", timeoutSeconds: 5 },
      restart: { policy: "never", maxRestarts: 0, windowSeconds: 60 },
      ...spec.extra,
    };
    await writeFile(join(folder, "template.json"), JSON.stringify(definition, null, 2));
    const storageArgs =
      spec.runtime === "process" && !s3Override
        ? ["--storage", "folder", "--storage-dir", this.folderStorage]
        : ["--storage", "s3"];
    return CliProcess.run(
      ["template", "push", folder, ...storageArgs],
      { ORCH_URL: this.url, ORCH_TOKEN: this.token, ...(s3Override ?? this.s3Env()) },
      this.dir,
    );
  }

  get folderStorage(): string {
    return join(this.dir, "storage");
  }

  s3Env(): Record<string, string> {
    const s3 = testServiceEnv("s3");
    if (!s3) return {};
    return {
      ORCH_S3_ENDPOINT: s3.ORCH_TEST_S3_ENDPOINT!,
      ORCH_S3_BUCKET: s3.ORCH_TEST_S3_BUCKET!,
      ORCH_S3_PREFIX: this.s3Prefix,
      ORCH_S3_REGION: s3.ORCH_TEST_S3_REGION!,
      ORCH_S3_FORCE_PATH_STYLE: "true",
      ORCH_S3_ACCESS_KEY_ID: s3.ORCH_TEST_S3_ACCESS_KEY!,
      ORCH_S3_SECRET_ACCESS_KEY: s3.ORCH_TEST_S3_SECRET_KEY!,
    };
  }

  /** Joins a new agent (first start) and waits until its node is ONLINE. */
  async addAgent(
    name: string,
    runtime: "process" | "docker",
    portRange: string,
    extra: Record<string, string> = {},
  ): Promise<AgentHandle> {
    const join_ = await this.api("POST", "/nodes/join-tokens", {});
    if (join_.status !== 201) throw new Error(`join token: ${join_.status}`);
    const handle = new AgentHandle(this, name, runtime, portRange, extra);
    this.agents.set(name, handle);
    await handle.start(join_.body.secret as string);
    handle.nodeId = /node (node_[A-Za-z0-9_-]+)/.exec(handle.process!.output)?.[1] ?? "";
    await this.waitForNode(handle.nodeId, "ONLINE");
    return handle;
  }

  diagnostics(): string {
    const parts = [`--- brain ---\n${this.brain?.output.slice(-3000) ?? ""}`];
    for (const agent of this.agents.values())
      parts.push(`--- agent ${agent.name} ---\n${agent.process?.output.slice(-3000) ?? ""}`);
    return parts.join("\n");
  }

  /**
   * Removes everything: destroys instances through the Brain when it still
   * answers, then kills what may be left by hand (only servers this platform
   * started: found through its own agents' state and labels), stops the
   * processes, drops the database and deletes the temporary folder.
   */
  async dispose(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (what: () => Promise<unknown>) => {
      try {
        await what();
      } catch (error) {
        errors.push(error);
      }
    };
    if (this.brain && !this.brain.exited && this.token) {
      await attempt(async () => {
        const live = (await this.instances()).filter((i) => i.state !== "DESTROYED");
        await Promise.all(live.map((i) => this.api("DELETE", `/instances/${i.id}`)));
        let left: string[] = [];
        await waitFor(
          "instances destroyed",
          async () => {
            left = (await this.instances())
              .filter((i) => i.state !== "DESTROYED")
              .map((i) => `${i.name} ${i.state}`);
            return left.length === 0;
          },
          { timeoutMs: 20_000, context: () => `left: ${left.join(", ")}` },
        );
      });
    }
    for (const agent of this.agents.values()) await attempt(() => agent.stop());
    await attempt(async () => this.brain?.stop());
    for (const agent of this.agents.values()) await attempt(() => agent.killLeftovers());
    await attempt(async () => this.database?.drop());
    await attempt(() => rm(this.dir, { recursive: true, force: true }));
    if (errors.length > 0) console.warn("[resilience] cleanup problems:", errors);
  }
}

export class AgentHandle {
  process: CliProcess | null = null;
  nodeId = "";

  constructor(
    readonly platform: Platform,
    readonly name: string,
    readonly runtime: "process" | "docker",
    readonly portRange: string,
    readonly extra: Record<string, string>,
  ) {}

  get dataDir(): string {
    return join(this.platform.dir, "agents", this.name);
  }

  env(joinToken: string | null): Record<string, string> {
    const docker = testServiceEnv("docker");
    const storage =
      this.runtime === "process"
        ? { ORCH_STORAGE: "folder", ORCH_STORAGE_DIR: this.platform.folderStorage }
        : { ORCH_STORAGE: "s3", ...this.platform.s3Env() };
    const env = {
      ORCH_BRAIN_URL: this.platform.url,
      ORCH_DATA_DIR: this.dataDir,
      ORCH_NODE_NAME: this.name,
      ORCH_RUNTIME: this.runtime,
      ...(this.runtime === "docker"
        ? { ORCH_ALLOWED_IMAGES: docker!.ORCH_TEST_DOCKER_IMAGE! }
        : {}),
      ORCH_PORT_RANGE: this.portRange,
      ORCH_CAPACITY_MEMORY_MB: "1024",
      ORCH_CAPACITY_CPU: "2",
      ORCH_CAPACITY_DISK_MB: "2048",
      ...storage,
      ...this.extra,
    } as Record<string, string>;
    if (joinToken) env.ORCH_JOIN_TOKEN = joinToken;
    return env;
  }

  /** Starts the agent process (first start with a join token, later with its credential). */
  async start(joinToken: string | null = null): Promise<CliProcess> {
    this.process = await CliProcess.start(`agent ${this.name}`, ["agent"], this.env(joinToken), {
      cwd: this.platform.dir,
      readyText: "Agent running as node",
    });
    return this.process;
  }

  async crash(): Promise<void> {
    await this.process?.crash();
  }

  async stop(): Promise<void> {
    await this.process?.stop();
  }

  /** The identity of the running server: pid + start ticks, or container id + start time. */
  async serverIdentity(instanceId: string): Promise<string> {
    if (this.runtime === "process") {
      const record = JSON.parse(
        await readFile(join(this.dataDir, "runtime", instanceId, "instance.json"), "utf8"),
      ) as { run?: { pid: number; startTicks: number } };
      if (!record.run) throw new Error(`no run record for ${instanceId}`);
      process.kill(record.run.pid, 0); // throws when the process is gone
      return `pid ${record.run.pid} @${record.run.startTicks}`;
    }
    const { stdout } = await exec("docker", [
      "ps",
      "-q",
      "--no-trunc",
      "--filter",
      `label=io.orchestrator.instance-id=${instanceId}`,
    ]);
    const ids = stdout.trim().split("\n").filter(Boolean);
    if (ids.length !== 1) throw new Error(`${ids.length} running containers for ${instanceId}`);
    const inspected = await exec("docker", [
      "inspect",
      "-f",
      "{{.Id}} {{.State.StartedAt}} {{.State.Pid}}",
      ids[0]!,
    ]);
    return inspected.stdout.trim();
  }

  /** Kills servers this agent started that outlived the test (never anything else). */
  async killLeftovers(): Promise<void> {
    if (this.runtime === "process") {
      const { readdir } = await import("node:fs/promises");
      const root = join(this.dataDir, "runtime");
      const entries = await readdir(root).catch(() => [] as string[]);
      for (const entry of entries) {
        const record = await readFile(join(root, entry, "instance.json"), "utf8")
          .then((text) => JSON.parse(text) as { run?: { pid: number } })
          .catch(() => null);
        const pid = record?.run?.pid;
        if (pid && pid > 1) {
          try {
            process.kill(-pid, "SIGKILL"); // the server's own session/process group
          } catch {
            try {
              process.kill(pid, "SIGKILL");
            } catch {
              // already gone
            }
          }
        }
      }
      return;
    }
    const mine: string[] = [];
    // Also by instance directory mount: the containers bind-mount this agent's folders.
    const all = await exec("docker", [
      "ps",
      "-aq",
      "--filter",
      "label=io.orchestrator.managed=true",
    ]).catch(() => ({ stdout: "" }));
    for (const id of all.stdout.trim().split("\n").filter(Boolean)) {
      const mounts = await exec("docker", [
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Source}} {{end}}",
        id,
      ])
        .then((r) => r.stdout)
        .catch(() => "");
      if (mounts.includes(this.dataDir)) mine.push(id);
    }
    if (mine.length > 0)
      await exec("docker", ["rm", "-f", ...new Set(mine)]).catch(() => undefined);
  }
}
