import type { AgentCommand, InstanceTrigger } from "@orchestrator/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createHarness,
  type Harness,
  helloTemplate,
  nodeReport,
  reportsToRunning,
} from "./brain-harness.js";
import { TEST_DATABASES } from "./databases.js";

describe.each(TEST_DATABASES)("Brain on $name", (database) => {
  let h: Harness;
  beforeEach(async () => {
    h = await createHarness({}, {}, database);
  });
  afterEach(async () => {
    await h.close();
  });

  async function registerTemplate() {
    const response = await h.request("POST", "/api/v1/templates", {
      token: h.adminToken,
      body: { definition: helloTemplate },
    });
    expect(response.status).toBe(201);
    return response.body;
  }

  describe("Brain: an instance's life", () => {
    it("creates, schedules, dispatches, follows reports and destroys", async () => {
      await registerTemplate();
      const node = await h.joinNode("node-a");
      const created = await h.request("POST", "/api/v1/instances", {
        token: h.adminToken,
        body: { template: "hello", name: "survival", variables: { RCON_PASSWORD: "s3cret!" } },
      });
      expect(created.status).toBe(201);
      expect(created.body.state).toBe("REQUESTED");
      expect(created.body.variables).toEqual({ GREETING: "hi", RCON_PASSWORD: "********" });
      const id = created.body.id as string;

      await h.brain.runLoopsOnce();
      const scheduled = await h.request("GET", `/api/v1/instances/${id}`, { token: h.adminToken });
      expect(scheduled.body).toMatchObject({ state: "SCHEDULED", nodeId: node.nodeId, epoch: 1 });
      expect(scheduled.body.ports.game).toBeGreaterThanOrEqual(30000);

      // The node syncs and receives the prepare command, secrets included.
      const first = await h.sync(node.credential);
      expect(first.status).toBe(200);
      const prepare = first.body.commands[0] as AgentCommand;
      expect(prepare).toMatchObject({ type: "prepare", instanceId: id, epoch: 1 });
      expect(prepare.payload).toMatchObject({
        variables: { GREETING: "hi", RCON_PASSWORD: "s3cret!" },
        template: { name: "hello", version: 1 },
        runtime: "process",
      });

      const at = h.clock.now().toISOString();
      const report = (n: number, seq: number, trigger: InstanceTrigger) =>
        nodeReport(id, at, n, trigger, seq);
      const second = await h.sync(node.credential, {
        reports: [report(1, 1, "prepare"), report(2, 2, "prepared")],
        commandResults: [{ commandId: prepare.id, ok: true }],
        inventory: [{ instanceId: id, state: "PREPARED", seq: 2, epoch: 1 }],
      });
      expect(second.body.acknowledgedReports).toBe(2);
      // PREPARED with desired running: the Brain sends start right away.
      expect(second.body.commands.map((c: AgentCommand) => c.type)).toEqual(["start"]);

      const third = await h.sync(node.credential, {
        reports: [report(3, 3, "start"), report(4, 4, "ready")],
        inventory: [{ instanceId: id, state: "RUNNING", seq: 4, epoch: 1 }],
      });
      expect(third.body.acknowledgedReports).toBe(4);
      expect(
        (await h.request("GET", `/api/v1/instances/${id}`, { token: h.adminToken })).body.state,
      ).toBe("RUNNING");

      // A duplicate and a late report change nothing (the inventory is always complete).
      await h.sync(node.credential, {
        reports: [report(4, 4, "ready"), report(2, 2, "prepared")],
        inventory: [{ instanceId: id, state: "RUNNING", seq: 4, epoch: 1 }],
      });
      const events = await h.request("GET", `/api/v1/instances/${id}/events`, {
        token: h.adminToken,
      });
      expect(events.body.items.map((e: { to: string }) => e.to)).toEqual([
        "REQUESTED",
        "SCHEDULED",
        "PREPARING",
        "PREPARED",
        "STARTING",
        "RUNNING",
      ]);

      const destroyed = await h.request("DELETE", `/api/v1/instances/${id}`, {
        token: h.adminToken,
      });
      expect(destroyed.status).toBe(202);
      expect(destroyed.body.state).toBe("DESTROYING");
      const fourth = await h.sync(node.credential, {
        inventory: [{ instanceId: id, state: "RUNNING", seq: 4, epoch: 1 }],
      });
      expect(fourth.body.commands.map((c: AgentCommand) => c.type)).toEqual(["destroy"]);
      await h.sync(node.credential, { reports: [report(5, 5, "destroyed")] });
      const gone = await h.request("GET", `/api/v1/instances/${id}`, { token: h.adminToken });
      expect(gone.body.state).toBe("DESTROYED");
      const nodeView = await h.request("GET", `/api/v1/nodes/${node.nodeId}`, {
        token: h.adminToken,
      });
      expect(nodeView.body.allocated).toEqual({ memoryMb: 0, cpu: 0, diskMb: 0 });
    });

    it("keeps an unplaceable instance REQUESTED with the scheduler's explanation", async () => {
      await registerTemplate();
      await h.joinNode("tiny", { capacity: { memoryMb: 256, cpu: 4, diskMb: 10_000 } });
      const created = await h.request("POST", "/api/v1/instances", {
        token: h.adminToken,
        body: { template: "hello", name: "big", variables: { RCON_PASSWORD: "x" } },
      });
      await h.brain.runLoopsOnce();
      const pending = await h.request("GET", `/api/v1/instances/${created.body.id}`, {
        token: h.adminToken,
      });
      expect(pending.body.state).toBe("REQUESTED");
      expect(pending.body.pendingPlacement.explanation.lines.join("\n")).toMatch(/memory/);
    });

    it("marks a silent node OFFLINE and its instances LOST, then finds them again", async () => {
      await registerTemplate();
      const node = await h.joinNode("node-b");
      const created = await h.request("POST", "/api/v1/instances", {
        token: h.adminToken,
        body: { template: "hello", name: "x", variables: { RCON_PASSWORD: "x" } },
      });
      const id = created.body.id as string;
      await h.brain.runLoopsOnce();
      const at = h.clock.now().toISOString();
      await h.sync(node.credential, { reports: reportsToRunning(id, at) });
      await h.advance(16_000);
      expect(
        (await h.request("GET", `/api/v1/nodes/${node.nodeId}`, { token: h.adminToken })).body
          .status,
      ).toBe("OFFLINE");
      expect(
        (await h.request("GET", `/api/v1/instances/${id}`, { token: h.adminToken })).body.state,
      ).toBe("LOST");

      await h.sync(node.credential, {
        inventory: [{ instanceId: id, state: "RUNNING", seq: 4, epoch: 1 }],
      });
      expect(
        (await h.request("GET", `/api/v1/nodes/${node.nodeId}`, { token: h.adminToken })).body
          .status,
      ).toBe("ONLINE");
      expect(
        (await h.request("GET", `/api/v1/instances/${id}`, { token: h.adminToken })).body.state,
      ).toBe("RUNNING");
    });
  });
});
