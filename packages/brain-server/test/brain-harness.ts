/** Builds a Brain on in-memory SQLite with a fake clock, plus helpers to act as users and nodes. */
import type {
  InstanceTrigger,
  JoinResponse,
  SyncReport,
  SyncRequest,
  SyncResponse,
} from "@orchestrator/core";
import { FakeClock, SequentialIdGenerator } from "@orchestrator/core/testing";
import { type Brain, type BrainOverrides, buildBrain } from "../src/brain.js";
import { type BrainConfig, loadBrainConfig } from "../src/config/brain-config.js";
import { sqliteDatabase, type TestDatabase } from "./databases.js";

export const ADMIN_PASSWORD = "correct-horse-battery";

export const helloTemplate = {
  name: "hello",
  layers: ["hello"],
  variables: {
    GREETING: { type: "string", default: "hi", maxLength: 50 },
    RCON_PASSWORD: { type: "string", secret: true, required: true },
  },
  runtime: { process: { command: ["sh", "-c", "echo ready"] } },
  ports: [{ name: "game", protocol: "tcp" }],
  resources: { memoryMb: 512, cpu: 0.5, diskMb: 100 },
  readiness: { log: "ready", timeoutSeconds: 30 },
};

/** One lifecycle report of a node: journal position `n`, per-instance `seq` (default `n`). */
export function nodeReport(
  instanceId: string,
  at: string,
  n: number,
  trigger: InstanceTrigger,
  seq = n,
  epoch = 1,
): SyncReport {
  return { n, instanceId, seq, epoch, trigger, reason: trigger, at };
}

/** The reports of a node taking an instance from SCHEDULED to RUNNING (prepare … ready). */
export function reportsToRunning(instanceId: string, at: string, epoch = 1): SyncReport[] {
  return (["prepare", "prepared", "start", "ready"] as const).map((trigger, i) =>
    nodeReport(instanceId, at, i + 1, trigger, i + 1, epoch),
  );
}

export interface Harness {
  brain: Brain;
  clock: FakeClock;
  config: BrainConfig;
  adminToken: string;
  request(
    method: "GET" | "POST" | "PATCH" | "DELETE",
    url: string,
    options?: { token?: string | null; body?: unknown; headers?: Record<string, string> },
    // biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted field by field
  ): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  /** An API token for a new user of `role`. */
  userToken(role: "admin" | "operator" | "viewer"): Promise<string>;
  joinNode(name: string, overrides?: Partial<Record<string, unknown>>): Promise<JoinResponse>;
  /**
   * Moves the fake clock forward second by second, running the loops after each
   * step as a live Brain would (one jump would look like a stall of the Brain).
   */
  advance(ms: number): Promise<void>;
  sync(
    credential: string,
    body?: Partial<SyncRequest>,
  ): Promise<{ status: number; body: SyncResponse }>;
  close(): Promise<void>;
}

let users = 0;

export async function createHarness(
  configOverrides: Partial<BrainConfig> = {},
  overrides: BrainOverrides = {},
  database: TestDatabase = sqliteDatabase,
): Promise<Harness> {
  const clock = new FakeClock("2026-03-01T10:00:00Z");
  const db = await database.create();
  const config = loadBrainConfig({
    env: {},
    overrides: {
      databaseUrl: db.url,
      adminPassword: ADMIN_PASSWORD,
      syncWaitMs: 0,
      ...configOverrides,
    },
  });
  const brain = await buildBrain(config, {
    clock,
    ids: new SequentialIdGenerator(),
    logger: false,
    ...overrides,
  });
  await brain.ensureAdmin();
  const inject = brain.app.inject.bind(brain.app);
  const request: Harness["request"] = async (method, url, options = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const response = await inject({
      method,
      url,
      headers,
      ...(options.body === undefined ? {} : { payload: options.body as object }),
    });
    let body: unknown = response.body;
    try {
      body = response.json();
    } catch {
      // not JSON
    }
    return { status: response.statusCode, body, headers: response.headers };
  };
  const login = await request("POST", "/api/v1/auth/login", {
    body: { username: "admin", password: ADMIN_PASSWORD },
  });
  const session = login.body.token as string;
  const created = await request("POST", "/api/v1/tokens", {
    headers: { cookie: `orch_session=${session}`, "x-csrf-token": login.body.csrfToken },
    body: { name: "tests" },
  });
  const adminToken = created.body.secret as string;
  const harness: Harness = {
    brain,
    clock,
    config,
    adminToken,
    request,
    async userToken(role) {
      users += 1;
      const username = `${role}${users}`;
      const password = "a-long-enough-password";
      const user = await request("POST", "/api/v1/users", {
        token: adminToken,
        body: { username, password, role },
      });
      if (user.status !== 201) throw new Error(JSON.stringify(user.body));
      const loggedIn = await request("POST", "/api/v1/auth/login", {
        body: { username, password },
      });
      const token = await request("POST", "/api/v1/tokens", {
        headers: {
          cookie: `orch_session=${loggedIn.body.token}`,
          "x-csrf-token": loggedIn.body.csrfToken,
        },
        body: { name: "t" },
      });
      return token.body.secret as string;
    },
    async joinNode(name, extra = {}) {
      const token = await request("POST", "/api/v1/nodes/join-tokens", {
        token: adminToken,
        body: {},
      });
      const joined = await request("POST", "/api/v1/agent/join", {
        body: {
          joinToken: token.body.secret,
          name,
          capacity: { memoryMb: 4096, cpu: 4, diskMb: 10_000 },
          labels: {},
          portRange: { from: 30000, to: 30010 },
          reservedPorts: [],
          runtimes: ["process"],
          agentVersion: "test",
          ...extra,
        },
      });
      if (joined.status !== 201) throw new Error(JSON.stringify(joined.body));
      return joined.body as JoinResponse;
    },
    async sync(credential, body = {}) {
      const response = await request("POST", "/api/v1/agent/sync", {
        token: credential,
        body: { inventory: [], reports: [], commandResults: [], logs: [], wait: false, ...body },
      });
      return response as { status: number; body: SyncResponse };
    },
    async advance(ms) {
      for (let left = ms; left > 0; left -= 1000) {
        clock.advance(Math.min(1000, left));
        await brain.runLoopsOnce();
      }
    },
    async close() {
      await brain.close();
      await db.drop();
    },
  };
  return harness;
}
