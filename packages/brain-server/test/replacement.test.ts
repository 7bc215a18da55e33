/**
 * Opt-in re-placement of LOST instances (`replaceLostAfterSeconds`): after the
 * grace period the instance is placed anew on another node with a new epoch,
 * and the old copy is destroyed when its node returns.
 */
import type { AgentCommand, InventoryItem } from "@orchestrator/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createHarness, type Harness, helloTemplate, reportsToRunning } from "./brain-harness.js";
import { TEST_DATABASES } from "./databases.js";

describe.each(TEST_DATABASES)("re-placing LOST instances on $name", (database) => {
  let h: Harness;
  /** What node-a runs, sent in full on every sync as a real agent does. */
  let inventory: InventoryItem[] = [];
  beforeEach(async () => {
    inventory = [];
    received.clear();
    h = await createHarness({}, {}, database);
  });
  afterEach(async () => {
    await h.close();
  });

  async function template(name: string, replaceLostAfterSeconds?: number) {
    const response = await h.request("POST", "/api/v1/templates", {
      token: h.adminToken,
      body: {
        definition: {
          ...helloTemplate,
          name,
          ...(replaceLostAfterSeconds === undefined ? {} : { replaceLostAfterSeconds }),
        },
      },
    });
    expect(response.status).toBe(201);
  }

  async function instance(id: string) {
    return (await h.request("GET", `/api/v1/instances/${id}`, { token: h.adminToken })).body;
  }

  /** Commands handed to each node (by credential) during `advance`. */
  const received = new Map<string, AgentCommand[]>();

  /** Lets `ms` pass while the given nodes sync every 5 s. */
  async function advance(ms: number, ...credentials: string[]) {
    for (let left = ms; left > 0; left -= 5_000) {
      await h.advance(Math.min(5_000, left));
      for (const credential of credentials) {
        const { body } = await h.sync(credential);
        received.set(credential, [...(received.get(credential) ?? []), ...body.commands]);
      }
    }
  }

  /** Creates an instance on the only ONLINE node and reports it RUNNING. */
  async function running(templateName: string, credential: string): Promise<string> {
    const created = await h.request("POST", "/api/v1/instances", {
      token: h.adminToken,
      body: { template: templateName, name: templateName, variables: { RCON_PASSWORD: "x" } },
    });
    const id = created.body.id as string;
    await h.brain.runLoopsOnce();
    const at = h.clock.now().toISOString();
    const reports = reportsToRunning(id, at);
    inventory = [...inventory, { instanceId: id, state: "RUNNING", seq: 4, epoch: 1 }];
    await h.sync(credential, { reports, inventory });
    expect((await instance(id)).state).toBe("RUNNING");
    return id;
  }

  it("places a LOST instance anew after the template's grace period and destroys the old copy when its node returns", async () => {
    await template("movable", 60);
    await template("pinned");
    const a = await h.joinNode("node-a");
    const movable = await running("movable", a.credential);
    const pinned = await running("pinned", a.credential);
    const b = await h.joinNode("node-b");
    const c = await h.joinNode("node-c");

    // node-a goes silent; b and c keep syncing.
    await advance(30_000, b.credential, c.credential);
    expect((await instance(movable)).state).toBe("LOST");
    // Within the grace period nothing moves.
    await advance(40_000, b.credential, c.credential);
    expect((await instance(movable)).state).toBe("LOST");

    await advance(25_000, b.credential, c.credential);
    await h.brain.runLoopsOnce();
    const moved = await instance(movable);
    expect(moved.state).toBe("SCHEDULED");
    expect([b.nodeId, c.nodeId]).toContain(moved.nodeId);
    expect(moved.epoch).toBe(2);
    // The template without the opt-in stays LOST, waiting for its node.
    expect((await instance(pinned)).state).toBe("LOST");
    // Its reservation on node-a is gone; the pinned one's is kept.
    const nodeA = await h.request("GET", `/api/v1/nodes/${a.nodeId}`, { token: h.adminToken });
    expect(nodeA.body.allocated.memoryMb).toBe(helloTemplate.resources.memoryMb);

    const events = await h.request("GET", `/api/v1/instances/${movable}/events`, {
      token: h.adminToken,
    });
    const transitions = events.body.items.map(
      (e: { from: string; to: string }) => `${e.from}>${e.to}`,
    );
    expect(transitions.slice(-3)).toEqual([
      "RUNNING>LOST",
      "LOST>REQUESTED",
      "REQUESTED>SCHEDULED",
    ]);

    // The new node gets the prepare command at the new epoch.
    const target = moved.nodeId === b.nodeId ? b : c;
    expect(
      (received.get(target.credential) ?? []).map((command) => [
        command.instanceId,
        command.type,
        command.epoch,
      ]),
    ).toEqual([[movable, "prepare", 2]]);

    // node-a returns with both copies still running: the moved one is destroyed
    // (old epoch, no longer placed there) and its late report is ignored.
    const back = await h.sync(a.credential, {
      inventory,
      reports: [
        {
          n: 9,
          instanceId: movable,
          seq: 5,
          epoch: 1,
          trigger: "stop",
          reason: "late",
          at: h.clock.now().toISOString(),
        },
      ],
    });
    const destroys = back.body.commands.filter(
      (command: AgentCommand) => command.type === "destroy",
    );
    expect(destroys.map((command: AgentCommand) => [command.instanceId, command.epoch])).toEqual([
      [movable, 1],
    ]);
    expect((await instance(movable)).state).toBe("SCHEDULED");
    expect((await instance(movable)).nodeId).toBe(target.nodeId);
    expect((await instance(pinned)).state).toBe("RUNNING");
  });

  it("leaves a LOST instance that should be stopped where it is", async () => {
    await template("movable", 10);
    const a = await h.joinNode("node-a");
    const id = await running("movable", a.credential);
    await h.request("POST", `/api/v1/instances/${id}/stop`, { token: h.adminToken });
    const b = await h.joinNode("node-b");
    const c = await h.joinNode("node-c");
    await advance(60_000, b.credential, c.credential);
    const lost = await instance(id);
    expect(lost.state).toBe("LOST");
    expect(lost.nodeId).toBe(a.nodeId);
  });
});
