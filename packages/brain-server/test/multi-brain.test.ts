/**
 * Two Brains on one database. Liveness: agents sync with either, only the
 * liveness lease holder decides who is OFFLINE; heartbeats heard by the other
 * Brain reach the holder through batched relays (DESIGN §5, §6). Placement
 * explanations: written by the scheduling Brain, readable through any.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SequentialIdGenerator } from "@orchestrator/core/testing";
import { describe, expect, it } from "vitest";
import {
  ADMIN_PASSWORD,
  createHarness,
  type Harness,
  helloTemplate,
  reportsToRunning,
} from "./brain-harness.js";
import { mysqlDatabase, mysqlSkipReason, type TestDatabase } from "./databases.js";
import { openSse } from "./sse-client.js";

interface Pair {
  a: Harness;
  b: Harness;
  close(): Promise<void>;
}

/** Two Brains (holders brain-a and brain-b) on one database; `drop` removes it at the end. */
async function pairOn(url: string, drop: () => Promise<void>): Promise<Pair> {
  const shared: TestDatabase = {
    name: url.startsWith("mysql") ? "mysql" : "sqlite",
    create: async () => ({ url, drop: async () => undefined }),
  };
  // Each replica its own ids (as UUIDs would be): sequential ids of two Brains collide.
  const a = await createHarness(
    {},
    { holder: "brain-a", ids: new SequentialIdGenerator("a") },
    shared,
  );
  const b = await createHarness(
    {},
    { holder: "brain-b", ids: new SequentialIdGenerator("b") },
    shared,
  );
  return {
    a,
    b,
    async close() {
      await a.close();
      await b.close();
      await drop();
    },
  };
}

async function sqliteFilePair(): Promise<Pair> {
  const dir = await mkdtemp(join(tmpdir(), "orch-two-brains-"));
  return pairOn(`sqlite:${join(dir, "brain.db")}`, () => rm(dir, { recursive: true, force: true }));
}

async function mysqlPair(): Promise<Pair> {
  const db = await mysqlDatabase.create();
  return pairOn(db.url, () => db.drop());
}

async function registerHello(pair: Pair): Promise<void> {
  const response = await pair.a.request("POST", "/api/v1/templates", {
    token: pair.a.adminToken,
    body: { definition: helloTemplate },
  });
  expect(response.status).toBe(201);
}

/** brain-b listening on a real socket (for SSE clients); returns its base URL. */
async function listenB(pair: Pair): Promise<string> {
  await pair.b.brain.app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = pair.b.brain.app.server.address() as { port: number };
  return `http://127.0.0.1:${port}`;
}

/** Both Brains live through `ms`, second by second; `each` runs after every step. */
async function advanceBoth(
  pair: Pair,
  ms: number,
  each: (second: number) => Promise<void> = async () => undefined,
): Promise<void> {
  for (let second = 1; second <= ms / 1000; second += 1) {
    pair.a.clock.advance(1000);
    pair.b.clock.advance(1000);
    await pair.a.brain.runLoopsOnce();
    await pair.b.brain.runLoopsOnce();
    await each(second);
  }
}

async function status(h: Harness, nodeId: string): Promise<string> {
  return (await h.request("GET", `/api/v1/nodes/${nodeId}`, { token: h.adminToken })).body.status;
}

const databases: [string, () => Promise<Pair>, boolean][] = [
  ["SQLite (file)", sqliteFilePair, true],
  ["MariaDB", mysqlPair, mysqlSkipReason === null],
];

describe.each(databases)("two Brains on %s", (_name, makePair, available) => {
  /** A test on two fresh Brains sharing one database (skipped where that database is absent). */
  const twoBrains = (name: string, body: (pair: Pair) => Promise<void>) =>
    it.runIf(available)(name, async () => {
      const pair = await makePair();
      try {
        await body(pair);
      } finally {
        await pair.close();
      }
    });

  twoBrains(
    "keeps a node ONLINE whose heartbeats reach only the Brain without the liveness lease",
    async (pair) => {
      const node = await pair.a.joinNode("elsewhere");
      await pair.a.brain.runLoopsOnce(); // brain-a takes the leases
      // From now on the node talks to brain-b only, every 5 s: never OFFLINE meanwhile.
      await advanceBoth(pair, 40_000, async (second) => {
        expect(await status(pair.a, node.nodeId)).toBe("ONLINE");
        if (second % 5 === 0) await pair.b.sync(node.credential);
      });

      // Silent: the holder declares it OFFLINE, late by at most two relay intervals.
      await advanceBoth(pair, 14_000);
      expect(await status(pair.a, node.nodeId)).toBe("ONLINE");
      await advanceBoth(pair, 16_000);
      expect(await status(pair.a, node.nodeId)).toBe("OFFLINE");

      // It comes back through brain-b, and the holder does not mark it again while it talks.
      await pair.b.sync(node.credential);
      expect(await status(pair.a, node.nodeId)).toBe("ONLINE");
      await advanceBoth(pair, 40_000, async (second) => {
        expect(await status(pair.a, node.nodeId)).toBe("ONLINE");
        if (second % 5 === 0) await pair.b.sync(node.credential);
      });
    },
  );

  twoBrains(
    "watches a node that joined through the other Brain and takes over with a fresh window",
    async (pair) => {
      await pair.a.brain.runLoopsOnce(); // brain-a holds the leases
      const node = await pair.b.joinNode("joined-at-b");
      // It never syncs: the holder learns of it from the database and times it out.
      await advanceBoth(pair, 30_000);
      expect(await status(pair.a, node.nodeId)).toBe("OFFLINE");

      const other = await pair.b.joinNode("talks-to-a");
      await advanceBoth(pair, 10_000, async (second) => {
        if (second % 5 === 0) await pair.a.sync(other.credential);
      });
      // brain-a goes away; brain-b takes the lease over. It never heard `other`
      // (whose heartbeats went to brain-a, the holder, which relays nothing), so
      // it gives every node a full window before judging.
      await pair.a.brain.close();
      for (let second = 1; second <= 14; second += 1) {
        pair.b.clock.advance(1000);
        await pair.b.brain.runLoopsOnce();
        expect(await status(pair.b, other.nodeId)).toBe("ONLINE");
        if (second % 5 === 0) await pair.b.sync(other.credential);
      }
      // Then it judges on what it hears itself.
      await pair.b.advance(30_000);
      expect(await status(pair.b, other.nodeId)).toBe("OFFLINE");
    },
  );

  twoBrains(
    "shows why an instance waits through either Brain, and forgets it once placed",
    async (pair) => {
      await registerHello(pair);
      const tiny = await pair.a.joinNode("tiny", {
        capacity: { memoryMb: 256, cpu: 4, diskMb: 10_000 },
      });
      const created = await pair.b.request("POST", "/api/v1/instances", {
        token: pair.a.adminToken,
        body: { template: "hello", name: "big", variables: { RCON_PASSWORD: "x" } },
      });
      await pair.a.brain.runLoopsOnce(); // brain-a schedules: nothing fits
      await pair.b.brain.runLoopsOnce(); // brain-b holds no lease
      const url = `/api/v1/instances/${created.body.id}`;
      for (const h of [pair.a, pair.b]) {
        const pending = await h.request("GET", url, { token: pair.a.adminToken });
        expect(pending.body.state).toBe("REQUESTED");
        expect(pending.body.pendingPlacement.explanation.lines.join("\n")).toMatch(/memory/);
      }
      // The node grows; the instance is placed and the explanation is gone.
      await pair.a.sync(tiny.credential, {
        node: { capacity: { memoryMb: 4096, cpu: 4, diskMb: 10_000 } },
      });
      await pair.a.brain.runLoopsOnce();
      const placed = await pair.b.request("GET", url, { token: pair.a.adminToken });
      expect(placed.body.state).toBe("SCHEDULED");
      expect(placed.body.pendingPlacement).toBeNull();
    },
  );

  twoBrains(
    "streams every replica's events to a panel connected to one of them, in order",
    async (pair) => {
      await registerHello(pair);
      await pair.a.joinNode("n");
      await pair.a.brain.runLoopsOnce(); // brain-a holds the scheduling lease
      const stream = await openSse(`${await listenB(pair)}/api/v1/events`, pair.a.adminToken);
      try {
        expect(stream.status).toBe(200);
        for (const name of ["one", "two", "three"]) {
          await pair.b.request("POST", "/api/v1/instances", {
            token: pair.a.adminToken,
            body: { template: "hello", name, variables: { RCON_PASSWORD: "x" } },
          });
        }
        // brain-a places them: its events reach brain-b's stream through the log.
        await pair.a.brain.runLoopsOnce();
        await stream.until(
          (messages) => messages.filter((m) => m.data.to === "SCHEDULED").length === 3,
        );
        const seqs = stream.messages.map((m) => Number(m.id));
        expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
        expect(new Set(seqs).size).toBe(seqs.length);
      } finally {
        await stream.close();
      }
    },
  );

  twoBrains(
    "relays console lines and stats from the replica an agent syncs with to the one a viewer watches on",
    async (pair) => {
      await registerHello(pair);
      const node = await pair.a.joinNode("n");
      const created = await pair.a.request("POST", "/api/v1/instances", {
        token: pair.a.adminToken,
        body: { template: "hello", name: "watched", variables: { RCON_PASSWORD: "x" } },
      });
      const id = created.body.id as string;
      await pair.a.brain.runLoopsOnce();
      const at = pair.a.clock.now().toISOString();
      const inventory = [{ instanceId: id, state: "RUNNING" as const, seq: 4, epoch: 1 }];
      await pair.a.sync(node.credential, {
        inventory,
        reports: reportsToRunning(id, at),
      });

      // A viewer on brain-b; the agent syncs with brain-a only.
      const base = `${await listenB(pair)}/api/v1/instances/${id}`;
      const logs = await openSse(`${base}/logs`, pair.a.adminToken);
      const stats = await openSse(`${base}/stats`, pair.a.adminToken);
      try {
        await pair.b.brain.runLoopsOnce(); // brain-b declares what its viewers watch
        await pair.a.brain.runLoopsOnce(); // brain-a learns it
        const asked = await pair.a.sync(node.credential, { inventory });
        expect(asked.body.watchLogs).toEqual([id]);
        expect(asked.body.watchStats).toEqual([id]);
        await pair.a.sync(node.credential, {
          inventory,
          logs: [
            {
              instanceId: id,
              lines: [
                { stream: "stdout", line: "listening on 30000", at },
                { stream: "stderr", line: "a warning", at },
              ],
            },
          ],
          stats: [
            {
              instanceId: id,
              at,
              cpu: 0.12,
              memoryBytes: 48_000_000,
              memoryLimitBytes: null,
              networkRxBytes: null,
              networkTxBytes: null,
              diskBytes: null,
            },
          ],
        });
        await pair.a.brain.runLoopsOnce(); // brain-a hands them over
        await pair.b.brain.runLoopsOnce(); // brain-b reads them back
        await logs.until((messages) => messages.filter((m) => m.event === "log").length === 2);
        expect(logs.messages.map((m) => m.data.line)).toEqual(["listening on 30000", "a warning"]);
        await stats.until((messages) => messages.some((m) => m.event === "stats"));
        expect(stats.messages.find((m) => m.event === "stats")?.data.memoryBytes).toBe(48_000_000);

        // Once nobody watches on brain-b, brain-a stops asking the agent.
        await logs.close();
        await stats.close();
        // (brain-b sees the hang-ups when its sockets close)
        const deadline = Date.now() + 5_000;
        let after = await pair.a.sync(node.credential, { inventory });
        while (after.body.watchLogs.length + after.body.watchStats.length > 0) {
          expect(Date.now()).toBeLessThan(deadline);
          await new Promise((resolve) => setTimeout(resolve, 20));
          await pair.b.brain.runLoopsOnce();
          await pair.a.brain.runLoopsOnce();
          after = await pair.a.sync(node.credential, { inventory });
        }
        expect(after.body).toMatchObject({ watchLogs: [], watchStats: [] });
      } finally {
        await logs.close();
        await stats.close();
      }
    },
  );

  twoBrains(
    "ends a live stream on one replica within seconds when its token is revoked through another",
    async (pair) => {
      const login = await pair.a.request("POST", "/api/v1/auth/login", {
        body: { username: "admin", password: ADMIN_PASSWORD },
      });
      const created = await pair.a.request("POST", "/api/v1/tokens", {
        token: login.body.token,
        body: { name: "watcher" },
      });
      expect(created.status).toBe(201);
      const stream = await openSse(`${await listenB(pair)}/api/v1/events`, created.body.secret);
      try {
        expect(stream.status).toBe(200);
        const started = Date.now();
        const revoked = await pair.a.request("DELETE", `/api/v1/tokens/${created.body.token.id}`, {
          token: login.body.token,
        });
        expect(revoked.status).toBeLessThan(300);
        pair.b.clock.advance(2_000); // brain-b's token cache (1 s) runs on its (fake) clock
        await Promise.race([stream.done, new Promise((resolve) => setTimeout(resolve, 6_000))]);
        expect(stream.ended).toBe(true);
        expect(Date.now() - started).toBeLessThan(5_000);
      } finally {
        await stream.close();
      }
    },
  );

  twoBrains(
    "keeps placements off a node whose runtime is down even when its agent reports to the other replica",
    async (pair) => {
      await registerHello(pair);
      const node = await pair.a.joinNode("engine-down");
      await pair.a.brain.runLoopsOnce(); // brain-a holds the scheduling lease
      const down = {
        kind: "process",
        available: false,
        reason: "process runtime did not answer within 5000 ms",
        since: pair.b.clock.now().toISOString(),
      };
      expect((await pair.b.sync(node.credential, { runtimes: [down] })).status).toBe(200);
      const created = await pair.a.request("POST", "/api/v1/instances", {
        token: pair.a.adminToken,
        body: { template: "hello", name: "waits", variables: { RCON_PASSWORD: "x" } },
      });
      await pair.a.brain.runLoopsOnce();
      const url = `/api/v1/instances/${created.body.id}`;
      const waiting = await pair.a.request("GET", url, { token: pair.a.adminToken });
      expect(waiting.body.state).toBe("REQUESTED");
      expect(JSON.stringify(waiting.body.pendingPlacement)).toContain(
        "runtime process unavailable",
      );
      const shown = await pair.a.request("GET", `/api/v1/nodes/${node.nodeId}`, {
        token: pair.a.adminToken,
      });
      expect(shown.body.unavailableRuntimes).toEqual([down]);

      // The engine answers again (a sync without a status): placed by brain-a.
      await pair.b.sync(node.credential);
      await pair.a.brain.runLoopsOnce();
      const placed = await pair.a.request("GET", url, { token: pair.a.adminToken });
      expect(placed.body).toMatchObject({ state: "SCHEDULED", nodeId: node.nodeId });
    },
  );
});
