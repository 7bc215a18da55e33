/**
 * Two Brains (two SqlRepositories with their own pools) on one MariaDB
 * database: what the row locks, unique keys and conditional updates must
 * guarantee when the races are real.
 */
import { type LoggedEvent, OrchestratorError } from "@orchestrator/core";
import { createConnection } from "mysql2/promise";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { clearAllData, SqlRepositories } from "../src/index.js";
import { createMysqlDatabase, mysqlSkipReason } from "./helpers.js";

const T0 = Date.parse("2026-03-01T00:00:00.000Z");
const time = (seconds: number) => new Date(T0 + seconds * 1000);
const SYSTEM = { kind: "system", id: "test" } as const;

function node(id: string, memoryMb: number) {
  return {
    id,
    name: id,
    labels: {},
    capacity: { memoryMb, cpu: 64, diskMb: 1_000_000 },
    overcommit: 1,
    portRange: { from: 30000, to: 30999 },
    reservedPorts: [],
    runtimes: ["process"],
    agentVersion: "1",
  };
}

function instance(id: string) {
  return {
    id,
    name: id,
    templateName: "hello",
    templateVersion: 1,
    desiredState: "running" as const,
    state: "REQUESTED" as const,
    nodeId: null,
    epoch: 0,
    ports: {},
    resources: { memoryMb: 256, cpu: 0.5, diskMb: 10 },
    variables: {},
    owner: null,
  };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe.skipIf(mysqlSkipReason !== null)("two Brains on one MariaDB database", () => {
  let database: Awaited<ReturnType<typeof createMysqlDatabase>>;
  let brainA: SqlRepositories;
  let brainB: SqlRepositories;

  beforeAll(async () => {
    database = await createMysqlDatabase();
    brainA = SqlRepositories.fromUrl(database.url, { mysql: { connectionLimit: 8 } });
    brainB = SqlRepositories.fromUrl(database.url, { mysql: { connectionLimit: 8 } });
    // Both start at once: the migration lock lets one migrate and the other find nothing to do.
    await Promise.all([brainA.init(), brainB.init()]);
  });

  afterAll(async () => {
    await brainA?.destroy();
    await brainB?.destroy();
    await database?.drop();
  });

  beforeEach(async () => {
    await clearAllData(brainA.db);
    await brainA.templates.addVersion(
      {
        name: "hello",
        layers: ["hello"],
        variables: {},
        runtime: { process: { command: ["true"] } },
        ports: [],
        resources: { memoryMb: 256, cpu: 0.5, diskMb: 10 },
        readiness: { timeoutSeconds: 5 },
        stop: { input: null, signal: "SIGTERM", timeoutSeconds: 5 },
        restart: { policy: "never", maxRestarts: 0, windowSeconds: 60 },
      },
      "sha256:hello",
      time(0),
    );
  });

  it("parallel reservations on one node from both Brains never over-commit or double-allocate", async () => {
    await brainA.nodes.create(node("n1", 30 * 256), "h1", time(0));
    const ids = Array.from({ length: 100 }, (_, i) => `i${i}`);
    for (const id of ids) await brainA.instances.create(instance(id), time(1));
    const outcomes = await Promise.allSettled(
      ids.map((id, i) =>
        (i % 2 === 0 ? brainA : brainB).transaction(async (set) => {
          await set.nodes.reserve("n1", id, instance(id).resources, [30000 + (i % 40)], time(2));
          await set.instances.transition(id, {
            expected: { state: "REQUESTED", version: 1 },
            trigger: "schedule",
            reason: "placed",
            actor: SYSTEM,
            at: time(2),
            change: { nodeId: "n1", epoch: 1 },
          });
        }),
      ),
    );
    const placed = outcomes.filter((o) => o.status === "fulfilled").length;
    for (const outcome of outcomes) {
      if (outcome.status === "rejected") expect(outcome.reason?.code).toBe("CONFLICT");
    }
    expect(placed).toBeGreaterThan(0);
    expect(placed).toBeLessThanOrEqual(30);
    const allocations = await brainB.nodes.listPortAllocations({ nodeId: "n1" });
    expect(new Set(allocations.map((a) => a.port)).size).toBe(placed);
    expect((await brainB.nodes.get("n1"))?.allocated.memoryMb).toBe(placed * 256);
    expect(await brainB.instances.count({ state: "SCHEDULED", nodeId: "n1" })).toBe(placed);
  });

  it("parallel transitions of one instance from both Brains: exactly one applies", async () => {
    await brainA.instances.create(instance("i1"), time(1));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 === 0 ? brainA : brainB).instances.transition("i1", {
          expected: { state: "REQUESTED" },
          trigger: i % 3 === 0 ? "destroy" : "schedule",
          reason: `brain ${i % 2 === 0 ? "A" : "B"}`,
          actor: SYSTEM,
          at: time(2),
        }),
      ),
    );
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    expect((await brainB.instances.get("i1"))?.version).toBe(2);
    expect(await brainB.events.listForInstance("i1")).toHaveLength(1);
  });

  it("two lease holders: one at a time, and a fenced write cannot land after a takeover", async () => {
    // Both Brains compete every "second" of a simulated minute, with 3 s leases.
    let lastEpoch = 0;
    for (let second = 0; second < 60; second += 1) {
      const [a, b] = await Promise.all([
        brainA.leases.acquire("scheduler", "brain-a", 3000, time(second)),
        brainB.leases.acquire("scheduler", "brain-b", 3000, time(second)),
      ]);
      expect(a === null || b === null).toBe(true);
      const holder = a ?? b;
      expect(holder).not.toBeNull();
      expect(holder!.epoch).toBeGreaterThanOrEqual(lastEpoch);
      lastEpoch = holder!.epoch;
    }

    // brain-a holds the lease and starts a fenced transaction...
    const lease = await brainA.leases.acquire("loop", "brain-a", 1000, time(100));
    const inside = deferred();
    const finish = deferred();
    const fenced = brainA.transaction(
      async (set) => {
        inside.resolve();
        await finish.promise;
        await set.audit.append({
          at: time(100.5),
          actor: SYSTEM,
          action: "loop.write",
          target: "loop",
          details: { epoch: lease!.epoch },
        });
      },
      { fence: { name: "loop", holder: "brain-a", epoch: lease!.epoch, now: time(100.5) } },
    );
    await inside.promise;
    // ...while brain-b, whose clock says the lease has expired, tries to take it over.
    let takenOver = false;
    const takeover = brainB.leases.acquire("loop", "brain-b", 1000, time(102)).then((result) => {
      takenOver = true;
      return result;
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(takenOver).toBe(false); // blocked by the fenced transaction's lock on the lease row
    finish.resolve();
    await fenced;
    expect((await takeover)?.epoch).toBe(lease!.epoch + 1);
    // The old holder's next fenced write is refused.
    const refused = await brainA
      .transaction(async () => "wrote", {
        fence: { name: "loop", holder: "brain-a", epoch: lease!.epoch, now: time(100.9) },
      })
      .catch((error: unknown) => error);
    expect(OrchestratorError.hasCode(refused, "CONFLICT")).toBe(true);
  });

  it("retries a transaction chosen as a deadlock victim", async () => {
    await brainA.nodes.create(node("n1", 1024), "h1", time(0));
    await brainA.nodes.create(node("n2", 1024), "h2", time(0));
    const firstLocks = { a: deferred(), b: deferred() };
    const attempts = { a: 0, b: 0 };
    const crossed = async (brain: SqlRepositories, key: "a" | "b", first: string, second: string) =>
      brain.transaction(async (set) => {
        attempts[key] += 1;
        await set.nodes.touch(first, time(attempts[key]));
        if (attempts[key] === 1) {
          firstLocks[key].resolve();
          await firstLocks[key === "a" ? "b" : "a"].promise;
        }
        await set.nodes.touch(second, time(attempts[key]));
      });
    await Promise.all([crossed(brainA, "a", "n1", "n2"), crossed(brainB, "b", "n2", "n1")]);
    expect(attempts.a + attempts.b).toBeGreaterThanOrEqual(3);
  });

  it("a reader resuming after seq N never misses a smaller seq committed later", async () => {
    const total = 120;
    let writing = true;
    const seen: number[] = [];
    const reader = (async () => {
      let last = 0;
      while (writing || last < total) {
        const batch: LoggedEvent[] = await brainB.events.listAfter(last, 50);
        for (const event of batch) {
          expect(event.seq).toBe(last + 1);
          last = event.seq;
          seen.push(event.seq);
        }
        if (batch.length === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        (i % 2 === 0 ? brainA : brainB).transaction(async (set) => {
          await set.events.append({
            instanceId: `i${i}`,
            from: "REQUESTED",
            to: "SCHEDULED",
            at: time(1),
            reason: "placed",
            actor: SYSTEM,
          });
          // Keep some transactions open a little after taking their seq.
          if (i % 7 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
        }),
      ),
    );
    writing = false;
    await reader;
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  });

  it("the pool reconnects by itself after the server drops its connections", async () => {
    await brainA.nodes.create(node("n1", 1024), "h1", time(0));
    // Open several pooled connections, then have the server kill every one of them
    // (what a MariaDB restart does to a running Brain).
    await Promise.all(Array.from({ length: 6 }, () => brainA.nodes.get("n1")));
    const base = new URL(database.url);
    const admin = await createConnection({
      host: base.hostname,
      port: Number(base.port || 3306),
      user: decodeURIComponent(base.username),
      password: decodeURIComponent(base.password),
    });
    try {
      const [rows] = await admin.query(
        "select id from information_schema.processlist where db = ? and id <> connection_id()",
        [database.name],
      );
      const ids = (rows as { id: number }[]).map((row) => row.id);
      expect(ids.length).toBeGreaterThan(0);
      for (const id of ids) await admin.query(`kill connection ${Number(id)}`);
    } finally {
      await admin.end();
    }
    // Reads, single writes and transactions all work again without any intervention.
    expect((await brainA.nodes.get("n1"))?.id).toBe("n1");
    await brainA.nodes.touch("n1", time(5));
    await brainA.transaction(async (set) => {
      await set.nodes.touch("n1", time(6));
      await set.audit.append({ at: time(6), actor: SYSTEM, action: "a", target: "t", details: {} });
    });
    expect((await brainA.nodes.get("n1"))?.lastSeenAt).toEqual(time(6));
  });
});

if (mysqlSkipReason) {
  describe("two Brains on one MariaDB database", () => {
    it.skip(`skipped: ${mysqlSkipReason}`, () => {});
  });
}
