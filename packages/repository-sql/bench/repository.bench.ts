/**
 * Repository benchmarks on a SQLite file (WAL) and on MariaDB
 * (`ORCH_TEST_MYSQL_URL`; skipped when
 * absent). Every scenario runs interleaved with its baseline on the same
 * database in the same run:
 *
 * - `instance-create`: one transaction = create instance + reserve capacity and
 *   a port + append the event + enqueue the prepare command; baseline: a bare
 *   single-row INSERT loop through the driver (autocommit), the ceiling.
 * - `event-append`: `events.append` (its own transaction: seq counter + row);
 *   baseline: the same bare INSERT loop.
 * - `list-10k`: `instances.list` with filters over 10,000 instances (every row
 *   matches, so all 10,000 are read and mapped); baseline: the same SELECT
 *   through the bare driver, rows left raw (the ceiling for a listing).
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { testServiceEnv } from "@orchestrator/core/testing";
import BetterSqlite3 from "better-sqlite3";
import { type Connection, createConnection } from "mysql2/promise";
import { type BenchModule, interleave, median, type ScenarioResult } from "../../../bench/lib.js";
import { SqlRepositories } from "../src/index.js";

const SCENARIOS = [
  "repo.create.sqlite",
  "repo.create.mysql",
  "repo.event-append.sqlite",
  "repo.event-append.mysql",
  "repo.list-10k.sqlite",
  "repo.list-10k.mysql",
] as const;

const AT = new Date("2026-03-01T00:00:00.000Z");
const SYSTEM = { kind: "system", id: "bench" } as const;
const STATES = ["RUNNING", "STOPPED", "STARTING", "FAILED"] as const;

/** The bare-driver side of a database: the baseline operations. */
interface Bare {
  /** Inserts `count` rows one by one (autocommit); returns rows/s. */
  insertLoop(count: number): Promise<number>;
  /** Reads the listing's rows with plain SQL; returns rows/s. */
  selectInstances(templateName: string): Promise<number>;
  close(): Promise<void>;
}

interface Target {
  flavor: "sqlite" | "mysql";
  repositories: SqlRepositories;
  bare: Bare;
  cleanup(): Promise<void>;
}

const BASELINE_TABLE = `create table bench_baseline (
  id varchar(64) primary key, name varchar(255) not null, payload text not null, created_at bigint not null)`;

function perSecond(count: number, startedAt: number): number {
  return (count * 1000) / (performance.now() - startedAt);
}

async function sqliteTarget(tmpDir: string): Promise<Target> {
  const file = join(tmpDir, "bench.db");
  const repositories = SqlRepositories.fromUrl(`sqlite:${file}`);
  await repositories.init();
  const raw = new BetterSqlite3(file);
  raw.pragma("journal_mode = WAL");
  raw.pragma("synchronous = NORMAL");
  raw.exec(BASELINE_TABLE);
  const insert = raw.prepare(
    "insert into bench_baseline (id, name, payload, created_at) values (?, ?, ?, ?)",
  );
  const select = raw.prepare(
    "select * from orch_instances where template_name = ? and desired_state = 'running' and state in ('RUNNING','STOPPED','STARTING','FAILED') order by created_at, id",
  );
  let next = 0;
  return {
    flavor: "sqlite",
    repositories,
    bare: {
      async insertLoop(count) {
        const start = performance.now();
        for (let i = 0; i < count; i += 1) {
          insert.run(`b${next++}`, "baseline row", '{"a":1}', Date.now());
        }
        return perSecond(count, start);
      },
      async selectInstances(templateName) {
        const start = performance.now();
        const rows = select.all(templateName);
        return perSecond(rows.length, start);
      },
      async close() {
        raw.close();
      },
    },
    cleanup: () => repositories.destroy(),
  };
}

async function mysqlTarget(): Promise<Target | string> {
  const env = testServiceEnv("mysql");
  if (!env) return "ORCH_TEST_MYSQL_URL not set (npm run services up)";
  const base = new URL(env.ORCH_TEST_MYSQL_URL!);
  const name = `orch_bench_${randomBytes(4).toString("hex")}`;
  const options = {
    host: base.hostname,
    port: Number(base.port || 3306),
    user: decodeURIComponent(base.username),
    password: decodeURIComponent(base.password),
  };
  let admin: Connection;
  try {
    admin = await createConnection(options);
  } catch (error) {
    return `MariaDB unreachable: ${(error as Error).message}`;
  }
  await admin.query(`create database \`${name}\` character set utf8mb4 collate utf8mb4_bin`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  const repositories = SqlRepositories.fromUrl(url.toString());
  await repositories.init();
  const raw = await createConnection({ ...options, database: name });
  await raw.query(BASELINE_TABLE);
  let next = 0;
  return {
    flavor: "mysql",
    repositories,
    bare: {
      async insertLoop(count) {
        const start = performance.now();
        for (let i = 0; i < count; i += 1) {
          await raw.query(
            "insert into bench_baseline (id, name, payload, created_at) values (?, ?, ?, ?)",
            [`b${next++}`, "baseline row", '{"a":1}', Date.now()],
          );
        }
        return perSecond(count, start);
      },
      async selectInstances(templateName) {
        const start = performance.now();
        const [rows] = await raw.query(
          "select * from orch_instances where template_name = ? and desired_state = 'running' and state in ('RUNNING','STOPPED','STARTING','FAILED') order by created_at, id",
          [templateName],
        );
        return perSecond((rows as unknown[]).length, start);
      },
      async close() {
        await raw.end();
      },
    },
    cleanup: async () => {
      await repositories.destroy();
      await admin.query(`drop database if exists \`${name}\``);
      await admin.end();
    },
  };
}

async function seedTemplate(repositories: SqlRepositories, templateName: string): Promise<void> {
  await repositories.templates.addVersion(
    {
      name: templateName,
      layers: [templateName],
      variables: { GREETING: { type: "string" } },
      runtime: { process: { command: ["node", "server.js"] } },
      ports: [{ name: "game", protocol: "tcp" }],
      resources: { memoryMb: 64, cpu: 0.1, diskMb: 10 },
      readiness: { timeoutSeconds: 30 },
      stop: { input: null, signal: "SIGTERM", timeoutSeconds: 10 },
      restart: { policy: "never", maxRestarts: 0, windowSeconds: 60 },
    },
    `sha256:${templateName}`,
    AT,
  );
}

/** Instance create as the Brain does it: one transaction, four writes. */
function instanceCreate(target: Target, count: number): () => Promise<number> {
  let round = 0;
  return async () => {
    round += 1;
    const nodeId = `bench-node-${round}`;
    await target.repositories.nodes.create(
      {
        id: nodeId,
        name: nodeId,
        labels: {},
        capacity: { memoryMb: 10_000_000, cpu: 100_000, diskMb: 10_000_000 },
        overcommit: 1,
        portRange: { from: 1, to: 65_535 },
        reservedPorts: [],
        runtimes: ["process"],
        agentVersion: "bench",
      },
      `bench-credential-${round}`,
      AT,
    );
    const start = performance.now();
    for (let i = 0; i < count; i += 1) {
      const id = `inst-${round}-${i}`;
      const port = 1024 + i;
      await target.repositories.transaction(async (set) => {
        await set.instances.create(
          {
            id,
            name: id,
            templateName: "create",
            templateVersion: 1,
            desiredState: "running",
            state: "SCHEDULED",
            nodeId,
            epoch: 1,
            ports: { game: port },
            resources: { memoryMb: 64, cpu: 0.1, diskMb: 10 },
            variables: { GREETING: "hello" },
            owner: "bench",
          },
          AT,
        );
        await set.nodes.reserve(nodeId, id, { memoryMb: 64, cpu: 0.1, diskMb: 10 }, [port], AT);
        await set.events.append({
          instanceId: id,
          from: "REQUESTED",
          to: "SCHEDULED",
          at: AT,
          reason: `placed on ${nodeId}`,
          actor: SYSTEM,
        });
        await set.commands.enqueue(
          { id: `cmd-${id}`, nodeId, instanceId: id, type: "prepare", payload: {}, epoch: 1 },
          AT,
        );
      });
    }
    return perSecond(count, start);
  };
}

function eventAppend(target: Target, count: number): () => Promise<number> {
  return async () => {
    const start = performance.now();
    for (let i = 0; i < count; i += 1) {
      await target.repositories.events.append({
        instanceId: `inst-${i % 100}`,
        from: "STARTING",
        to: "RUNNING",
        at: AT,
        reason: "ready",
        actor: SYSTEM,
      });
    }
    return perSecond(count, start);
  };
}

async function seedInstances(target: Target, count: number): Promise<void> {
  await seedTemplate(target.repositories, "listed");
  const batch = 500;
  for (let offset = 0; offset < count; offset += batch) {
    await target.repositories.transaction(async (set) => {
      for (let i = offset; i < Math.min(count, offset + batch); i += 1) {
        await set.instances.create(
          {
            id: `listed-${String(i).padStart(6, "0")}`,
            name: `server ${i}`,
            templateName: "listed",
            templateVersion: 1,
            desiredState: "running",
            state: STATES[i % STATES.length]!,
            nodeId: `node-${i % 50}`,
            epoch: 1,
            ports: { game: 30000 + (i % 1000), query: 31000 + (i % 1000) },
            resources: { memoryMb: 1024, cpu: 0.5, diskMb: 512 },
            variables: { GREETING: `hello ${i}`, MOTD: "Welcome to the server" },
            owner: `user-${i % 7}`,
          },
          new Date(AT.getTime() + i),
        );
      }
    });
  }
}

function listInstances(target: Target, expected: number): () => Promise<number> {
  return async () => {
    const start = performance.now();
    const page = await target.repositories.instances.list({
      templateName: "listed",
      desiredState: "running",
      state: [...STATES],
    });
    if (page.items.length !== expected) {
      throw new Error(`listed ${page.items.length} instances, expected ${expected}`);
    }
    return perSecond(page.items.length, start);
  };
}

/** Runs `ours` and `baseline` interleaved, and records our CPU time per operation (user + system). */
async function measure(
  runs: number,
  operations: number,
  ours: () => Promise<number>,
  baseline: () => Promise<number>,
): Promise<{ ours: number[]; baseline: number[]; cpuMicrosPerOperation: number }> {
  const cpu: number[] = [];
  const timedOurs = async () => {
    const start = process.cpuUsage();
    const value = await ours();
    const used = process.cpuUsage(start);
    cpu.push((used.user + used.system) / operations);
    return value;
  };
  const measured = await interleave(runs, timedOurs, baseline);
  return { ...measured, cpuMicrosPerOperation: Math.round(median(cpu.slice(1)) * 10) / 10 };
}

function result(
  id: string,
  name: string,
  unit: string,
  runs: { ours: number[]; baseline: number[] },
  baselineName: string,
  target: { text: string; met: (value: number, ratio: number) => boolean | null },
  extra: Record<string, unknown>,
): ScenarioResult {
  const value = median(runs.ours);
  const baseline = median(runs.baseline);
  return {
    id,
    name,
    unit,
    better: "higher",
    runs: runs.ours,
    baseline: { name: baselineName, value: baseline, runs: runs.baseline },
    target: target.text,
    met: target.met(value, value / baseline),
    extra,
  };
}

function skipped(id: string, name: string, unit: string, reason: string): ScenarioResult {
  return {
    id,
    name,
    unit,
    better: "higher",
    runs: [],
    baseline: null,
    target: "–",
    met: null,
    skipped: reason,
  };
}

const NAMES = {
  create: "instance create (create + reserve + event + outbox, one transaction)",
  append: "event append (own transaction, seq in commit order)",
  list: "list 10,000 instances with filters",
} as const;

const UNITS = { create: "creations/s", append: "appends/s", list: "rows/s" } as const;

const bench: BenchModule = {
  name: "repository",
  scenarios: SCENARIOS,
  async run(context, selected) {
    const results: ScenarioResult[] = [];
    const runs = context.quick ? 3 : 5;
    const sizes = {
      sqlite: { create: context.quick ? 300 : 3000, append: context.quick ? 500 : 5000 },
      mysql: { create: context.quick ? 60 : 600, append: context.quick ? 100 : 1000 },
    };
    const listed = context.quick ? 2000 : 10_000;

    for (const flavor of ["sqlite", "mysql"] as const) {
      const ids = {
        create: `repo.create.${flavor}`,
        append: `repo.event-append.${flavor}`,
        list: `repo.list-10k.${flavor}`,
      };
      if (!Object.values(ids).some(selected)) continue;
      const made = flavor === "sqlite" ? await sqliteTarget(context.tmpDir) : await mysqlTarget();
      if (typeof made === "string") {
        for (const key of ["create", "append", "list"] as const) {
          if (selected(ids[key])) results.push(skipped(ids[key], NAMES[key], UNITS[key], made));
        }
        continue;
      }
      const target = made;
      const label = flavor === "sqlite" ? "SQLite file (WAL)" : "MariaDB";
      try {
        await seedTemplate(target.repositories, "create");
        if (selected(ids.create)) {
          const count = sizes[flavor].create;
          context.log(`${ids.create}: ${runs} × ${count} creations`);
          const measured = await measure(runs, count, instanceCreate(target, count), () =>
            target.bare.insertLoop(count),
          );
          results.push(
            result(
              ids.create,
              `${NAMES.create}, ${label}`,
              UNITS.create,
              measured,
              "bare single-row INSERT loop",
              flavor === "sqlite"
                ? {
                    text: "≥ 2,000/s (the Brain's API target rests on it)",
                    met: (value) => value >= 2000,
                  }
                : { text: "≥ 0.2× bare insert loop", met: (_, ratio) => ratio >= 0.2 },
              {
                operationsPerRun: count,
                cpuMicrosPerCreation: measured.cpuMicrosPerOperation,
              },
            ),
          );
        }
        if (selected(ids.append)) {
          const count = sizes[flavor].append;
          context.log(`${ids.append}: ${runs} × ${count} appends`);
          const measured = await measure(runs, count, eventAppend(target, count), () =>
            target.bare.insertLoop(count),
          );
          results.push(
            result(
              ids.append,
              `${NAMES.append}, ${label}`,
              UNITS.append,
              measured,
              "bare single-row INSERT loop",
              { text: "≥ 0.3× bare insert loop", met: (_, ratio) => ratio >= 0.3 },
              { operationsPerRun: count, cpuMicrosPerAppend: measured.cpuMicrosPerOperation },
            ),
          );
        }
        if (selected(ids.list)) {
          context.log(`${ids.list}: seeding ${listed} instances`);
          await seedInstances(target, listed);
          const measured = await measure(runs, listed, listInstances(target, listed), () =>
            target.bare.selectInstances("listed"),
          );
          const insertLoop = await target.bare.insertLoop(flavor === "sqlite" ? 2000 : 200);
          results.push(
            result(
              ids.list,
              `${NAMES.list}, ${label}`,
              UNITS.list,
              measured,
              "the same SELECT through the bare driver",
              { text: "≥ 0.3× bare SELECT", met: (_, ratio) => ratio >= 0.3 },
              {
                rowsListed: listed,
                cpuMicrosPerRow: measured.cpuMicrosPerOperation,
                msPerListing: Math.round((listed / median(measured.ours)) * 1000 * 10) / 10,
                bareInsertLoopRowsPerSecond: Math.round(insertLoop),
              },
            ),
          );
        }
      } finally {
        await target.bare.close();
        await target.cleanup();
      }
    }
    return results;
  },
};

export default bench;
