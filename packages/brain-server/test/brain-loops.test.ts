import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createHarness, helloTemplate } from "./brain-harness.js";
import { mysqlDatabase, mysqlSkipReason } from "./databases.js";

describe("Brain loops", () => {
  it("waits a full window after a restart before marking nodes offline", async () => {
    const dir = await mkdtemp(join(tmpdir(), "orch-brain-restart-"));
    const database = {
      name: "sqlite" as const,
      create: async () => ({ url: `sqlite:${join(dir, "brain.db")}`, drop: async () => undefined }),
    };
    try {
      const first = await createHarness({}, {}, database);
      const node = await first.joinNode("survivor");
      await first.close();

      // The Brain was down for longer than the offline timeout; the node kept running.
      const second = await createHarness({}, {}, database);
      await second.advance(14_000);
      const during = await second.request("GET", `/api/v1/nodes/${node.nodeId}`, {
        token: second.adminToken,
      });
      expect(during.body.status).toBe("ONLINE");
      await second.sync(node.credential);
      await second.advance(14_000);
      expect(
        (await second.request("GET", `/api/v1/nodes/${node.nodeId}`, { token: second.adminToken }))
          .body.status,
      ).toBe("ONLINE");
      await second.advance(2_000);
      expect(
        (await second.request("GET", `/api/v1/nodes/${node.nodeId}`, { token: second.adminToken }))
          .body.status,
      ).toBe("OFFLINE");
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("marks nobody offline when most nodes go silent at once (the Brain suspects itself)", async () => {
    const h = await createHarness();
    const nodes = await Promise.all(["a", "b", "c", "d"].map((name) => h.joinNode(name)));
    await h.advance(15_000);
    await h.sync(nodes[0]!.credential);
    await h.brain.runLoopsOnce();
    const listed = await h.request("GET", "/api/v1/nodes", { token: h.adminToken });
    expect(listed.body.items.map((node: { status: string }) => node.status)).toEqual([
      "ONLINE",
      "ONLINE",
      "ONLINE",
      "ONLINE",
    ]);
    const metrics = await h.request("GET", "/api/v1/metrics", { token: h.adminToken });
    expect(metrics.body).toContain("orch_liveness_degraded 1");
    await h.close();
  });

  it("does not write to the database for a heartbeat that changes nothing", async () => {
    const h = await createHarness();
    const node = await h.joinNode("quiet");
    const before = await h.request("GET", `/api/v1/nodes/${node.nodeId}`, { token: h.adminToken });
    h.clock.advance(5_000);
    await h.sync(node.credential);
    const after = await h.request("GET", `/api/v1/nodes/${node.nodeId}`, { token: h.adminToken });
    // lastSeenAt is persisted on transitions only; liveness lives in memory.
    expect(after.body.lastSeenAt).toEqual(before.body.lastSeenAt);
    expect(after.body.silenceMs).toBe(0);
    await h.close();
  });

  it("answers a parked sync as soon as a command is queued", async () => {
    const h = await createHarness({ syncWaitMs: 5_000 });
    await h.request("POST", "/api/v1/templates", {
      token: h.adminToken,
      body: { definition: helloTemplate },
    });
    const node = await h.joinNode("parked");
    const started = Date.now();
    const parked = h.sync(node.credential, { wait: true });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await h.request("POST", "/api/v1/instances", {
      token: h.adminToken,
      body: { template: "hello", name: "wake", variables: { RCON_PASSWORD: "x" } },
    });
    await h.brain.runLoopsOnce();
    const response = await parked;
    expect(response.body.commands.map((command) => command.type)).toEqual(["prepare"]);
    expect(Date.now() - started).toBeLessThan(4_000);
    await h.close();
  });

  it.skipIf(mysqlSkipReason !== null)(
    "lets only the lease holder schedule when two Brains share MariaDB",
    async () => {
      const db = await mysqlDatabase.create();
      const shared = {
        name: "mysql" as const,
        create: async () => ({ url: db.url, drop: async () => undefined }),
      };
      const a = await createHarness({}, { holder: "brain-a" }, shared);
      const b = await createHarness({}, { holder: "brain-b" }, shared);
      try {
        await a.request("POST", "/api/v1/templates", {
          token: a.adminToken,
          body: { definition: helloTemplate },
        });
        await a.joinNode("n");
        await a.brain.runLoopsOnce(); // brain-a takes the leases
        for (let i = 0; i < 3; i += 1) {
          await b.request("POST", "/api/v1/instances", {
            token: a.adminToken,
            body: { template: "hello", name: `i${i}`, variables: { RCON_PASSWORD: "x" } },
          });
        }
        await b.brain.runLoopsOnce(); // brain-b holds no lease: places nothing
        const pending = await b.request("GET", "/api/v1/instances?state=REQUESTED", {
          token: a.adminToken,
        });
        expect(pending.body.items).toHaveLength(3);
        await a.brain.runLoopsOnce();
        const placed = await b.request("GET", "/api/v1/instances?state=SCHEDULED", {
          token: a.adminToken,
        });
        expect(placed.body.items).toHaveLength(3);
        expect(
          new Set(placed.body.items.map((i: { ports: { game: number } }) => i.ports.game)).size,
        ).toBe(3);
      } finally {
        await a.close();
        await b.close();
        await db.drop();
      }
    },
  );
});
