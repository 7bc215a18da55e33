/**
 * What the Brain benchmarks share: a real Brain (`buildBrain`, real clock,
 * scheduling loop running) listening on loopback, an admin API token, nodes
 * joined through the API, fresh MariaDB databases, and SQL read-backs of what
 * the Brain did (scheduling latency from its event log).
 */
import { randomBytes } from "node:crypto";
import { testServiceEnv } from "@orchestrator/core/testing";
import BetterSqlite3 from "better-sqlite3";
import { createConnection } from "mysql2/promise";
import {
  type Brain,
  type BrainConfig,
  type BrainOverrides,
  buildBrain,
  loadBrainConfig,
} from "../src/index.js";

const ADMIN_PASSWORD = "bench-admin-password-long-enough";

export interface RunningBrain {
  brain: Brain;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** An admin API token (bearer). */
  token: string;
  /** In-process request (no socket): for setup, not for what is measured. */
  request(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<unknown>;
  joinNode(
    name: string,
    capacity: { memoryMb: number; cpu: number; diskMb: number },
    portRange?: { from: number; to: number },
  ): Promise<{ nodeId: string; credential: string }>;
  close(): Promise<void>;
}

/**
 * A Brain on `databaseUrl`, loops started, listening on a free loopback port.
 * By default an idle sync answers at once (simulated agents do not long-poll);
 * pass `{ syncWaitMs: ... }` for real agents.
 */
export async function startBrain(
  databaseUrl: string,
  overrides: Partial<BrainConfig> = {},
  brainOverrides: BrainOverrides = {},
): Promise<RunningBrain> {
  const config = loadBrainConfig({
    env: {},
    overrides: {
      databaseUrl,
      adminPassword: ADMIN_PASSWORD,
      host: "127.0.0.1",
      port: 0,
      syncWaitMs: 0,
      ...overrides,
    },
  });
  const brain = await buildBrain(config, { logger: false, ...brainOverrides });
  await brain.ensureAdmin();
  brain.startLoops();
  const address = await brain.listen();
  const url = address.replace("[::1]", "127.0.0.1").replace("0.0.0.0", "127.0.0.1");
  const inject = async (
    method: "GET" | "POST" | "DELETE",
    path: string,
    body: unknown,
    headers: Record<string, string>,
  ) => {
    const response = await brain.app.inject({
      method,
      url: path,
      headers,
      ...(body === undefined ? {} : { payload: body as object }),
    });
    const parsed: unknown = response.body ? response.json() : null;
    if (response.statusCode >= 400)
      throw new Error(`${method} ${path}: ${response.statusCode} ${response.body}`);
    return parsed as Record<string, unknown>;
  };
  const login = await inject(
    "POST",
    "/api/v1/auth/login",
    { username: "admin", password: ADMIN_PASSWORD },
    {},
  );
  const created = await inject(
    "POST",
    "/api/v1/tokens",
    { name: "bench" },
    { cookie: `orch_session=${login.token}`, "x-csrf-token": String(login.csrfToken) },
  );
  const token = String(created.secret);
  const auth = { authorization: `Bearer ${token}` };
  return {
    brain,
    url,
    token,
    request: (method, path, body) => inject(method, path, body, auth),
    async joinNode(name, capacity, portRange = { from: 30000, to: 30099 }) {
      const joinToken = await inject("POST", "/api/v1/nodes/join-tokens", {}, auth);
      const joined = await inject(
        "POST",
        "/api/v1/agent/join",
        {
          joinToken: joinToken.secret,
          name,
          capacity,
          labels: {},
          portRange,
          reservedPorts: [],
          runtimes: ["process"],
          agentVersion: "bench",
        },
        {},
      );
      return { nodeId: String(joined.nodeId), credential: String(joined.credential) };
    },
    close: () => brain.close(),
  };
}

/** A template that fits many times on a node (no ports: the port range is not the limit). */
export function tinyTemplate(name: string) {
  return {
    name,
    layers: ["bench"],
    runtime: { process: { command: ["sh", "-c", "echo ready"] } },
    resources: { memoryMb: 1, cpu: 0.001, diskMb: 1 },
    readiness: { log: "ready", timeoutSeconds: 30 },
  };
}

/** A fresh MariaDB database (`ORCH_TEST_MYSQL_URL`), or why there is none. */
export async function freshMysqlDatabase(
  prefix: string,
): Promise<{ url: string; drop(): Promise<void> } | string> {
  const env = testServiceEnv("mysql");
  if (!env?.ORCH_TEST_MYSQL_URL) return "ORCH_TEST_MYSQL_URL not set (npm run services up)";
  const base = new URL(env.ORCH_TEST_MYSQL_URL);
  const options = {
    host: base.hostname,
    port: Number(base.port || 3306),
    user: decodeURIComponent(base.username),
    password: decodeURIComponent(base.password),
  };
  const name = `${prefix}_${randomBytes(4).toString("hex")}`;
  try {
    const admin = await createConnection(options);
    try {
      await admin.query(`create database \`${name}\` character set utf8mb4 collate utf8mb4_bin`);
    } finally {
      await admin.end();
    }
  } catch (error) {
    return `MariaDB unreachable: ${(error as Error).message}`;
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const admin = await createConnection(options);
      try {
        await admin.query(`drop database if exists \`${name}\``);
      } finally {
        await admin.end();
      }
    },
  };
}

/** Plain SQL on the Brain's database, next to the Brain (reads, and the baseline's table). */
export interface SideConnection {
  run(sql: string, params?: readonly unknown[]): Promise<void>;
  rows<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

export async function sideConnection(databaseUrl: string): Promise<SideConnection> {
  if (databaseUrl.startsWith("sqlite:")) {
    const db = new BetterSqlite3(databaseUrl.slice("sqlite:".length));
    // The Brain's own pragmas (repository-sql): WAL, synchronous NORMAL.
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("busy_timeout = 5000");
    return {
      run: async (sql, params = []) => {
        db.prepare(sql).run(...params);
      },
      rows: async <T>(sql: string, params: readonly unknown[] = []) =>
        db.prepare(sql).all(...params) as T[],
      close: async () => {
        db.close();
      },
    };
  }
  const connection = await createConnection(databaseUrl);
  return {
    run: async (sql, params = []) => {
      await connection.query(sql, params as unknown[]);
    },
    rows: async <T>(sql: string, params: readonly unknown[] = []) =>
      (await connection.query(sql, params as unknown[]))[0] as T[],
    close: () => connection.end(),
  };
}

/**
 * Per instance created since `sinceMs`: ms from its creation to SCHEDULED
 * (null while not scheduled), read from the Brain's event log.
 */
export async function schedulingDelays(
  side: SideConnection,
  sinceMs: number,
): Promise<Array<number | null>> {
  const rows = await side.rows<{ requested: number | string; scheduled: number | string | null }>(
    `select r.at as requested, min(s.at) as scheduled from orch_events r
       left join orch_events s on s.subject_id = r.subject_id and s.to_state = 'SCHEDULED'
      where r.kind = 'instance' and r.from_state = 'REQUESTED' and r.to_state = 'REQUESTED' and r.at >= ?
      group by r.subject_id, r.at`,
    [sinceMs],
  );
  return rows.map((row) =>
    row.scheduled === null ? null : Number(row.scheduled) - Number(row.requested),
  );
}

/** Waits until no instance is REQUESTED (or `timeoutMs`); returns the ms waited. */
export async function untilAllScheduled(side: SideConnection, timeoutMs: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    const [row] = await side.rows<{ n: number | string }>(
      "select count(*) as n from orch_instances where state = 'REQUESTED'",
    );
    if (Number(row?.n ?? 0) === 0) return performance.now() - start;
    if (performance.now() - start > timeoutMs) return Number.POSITIVE_INFINITY;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
