/**
 * Multi-node end to end, every part a real process: a Brain on MariaDB, one
 * agent with the process runtime and folder storage, one with the Docker
 * runtime and S3 storage (s3rver), templates pushed with the CLI. Then the
 * faults: an agent killed with SIGKILL and restarted, the Brain killed with
 * SIGKILL and restarted.
 */
import { testServiceSkipReason } from "@orchestrator/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep, stopAllCliProcesses, waitFor } from "./support/cli-process.js";
import { type AgentHandle, OFFLINE_AFTER_MS, Platform } from "./support/platform.js";

const skip =
  testServiceSkipReason("mysql") ?? testServiceSkipReason("docker") ?? testServiceSkipReason("s3");
if (skip) console.warn(`[resilience] multi-node end to end: ${skip}`);

describe.skipIf(skip !== null)(
  "multi-node platform (Brain on MariaDB, process + Docker agents)",
  () => {
    let platform: Platform;
    let processAgent: AgentHandle;
    let dockerAgent: AgentHandle;
    const ids: { id: string; agent: () => AgentHandle }[] = [];
    const identities = new Map<string, string>();
    const eventCounts = new Map<string, number>();

    beforeAll(async () => {
      platform = await Platform.started();
      for (const runtime of ["process", "docker"] as const) {
        const pushed = await platform.pushTemplate({ name: `mn-${runtime}`, runtime });
        expect(pushed.code, pushed.output).toBe(0);
        expect(pushed.output).toContain("registered with the Brain");
      }
      [processAgent, dockerAgent] = await Promise.all([
        platform.addAgent("mn-process", "process", "42100-42199"),
        platform.addAgent("mn-docker", "docker", "42200-42299"),
      ]);
    }, 180_000);

    afterAll(async () => {
      try {
        await platform?.dispose();
      } finally {
        await stopAllCliProcesses();
      }
    }, 120_000);

    it("spreads instances over both nodes (each template on the node with its runtime) and runs them", async () => {
      for (const [runtime, agent] of [
        ["process", () => processAgent],
        ["docker", () => dockerAgent],
      ] as const) {
        for (const n of [1, 2]) {
          const id = await platform.createInstance(`mn-${runtime}`, `${runtime}-${n}`);
          ids.push({ id, agent });
        }
      }
      for (const { id, agent } of ids) {
        const running = await platform.waitForState(id, "RUNNING");
        expect(running.nodeId).toBe(agent().nodeId);
        identities.set(id, await agent().serverIdentity(id));
        eventCounts.set(id, (await platform.events(id)).length);
      }
      expect(new Set(ids.map(({ agent }) => agent().nodeId)).size).toBe(2);
    });

    it("agent SIGKILL → its node OFFLINE within the timeout, its instances LOST, none re-placed, servers untouched", async () => {
      const killedAt = Date.now();
      await dockerAgent.crash();
      await platform.waitForNode(dockerAgent.nodeId, "OFFLINE", OFFLINE_AFTER_MS * 4);
      // Detection bound: the offline timeout plus a liveness round and a poll.
      expect(Date.now() - killedAt).toBeLessThan(OFFLINE_AFTER_MS * 4);
      const dockerIds = ids.filter(({ agent }) => agent() === dockerAgent).map(({ id }) => id);
      for (const id of dockerIds) await platform.waitForState(id, "LOST", 10_000);
      // Give the scheduling loop several rounds to (wrongly) re-place anything.
      await sleep(2_000);
      const all = await platform.instances();
      expect(all).toHaveLength(ids.length);
      for (const { id, agent } of ids) {
        const instance = all.find((i) => i.id === id)!;
        expect(instance.nodeId).toBe(agent().nodeId);
        expect(instance.state).toBe(agent() === dockerAgent ? "LOST" : "RUNNING");
      }
      // The containers never depended on the agent process.
      for (const id of dockerIds)
        expect(await dockerAgent.serverIdentity(id)).toBe(identities.get(id));
      expect((await platform.node(processAgent.nodeId)).status).toBe("ONLINE");
    });

    it("agent restarted → node ONLINE, instances RUNNING again without a restart (same containers)", async () => {
      await dockerAgent.start(); // its stored credential, no join token
      await platform.waitForNode(dockerAgent.nodeId, "ONLINE");
      for (const { id, agent } of ids) {
        await platform.waitForState(id, "RUNNING");
        expect(await agent().serverIdentity(id)).toBe(identities.get(id));
        const events = await platform.events(id);
        expect(events.filter((e) => e.to === "STARTING")).toHaveLength(1);
      }
      expect(await platform.nodes()).toHaveLength(2);
    });

    it("Brain SIGKILL and restart → nothing lost, nothing duplicated, commands flow again", async () => {
      const before = await platform.instances();
      const eventsBefore = new Map<string, string>();
      for (const { id } of ids) eventsBefore.set(id, JSON.stringify(await platform.events(id)));
      await platform.brain!.crash();
      await sleep(500);
      await platform.startBrain();
      // Startup grace: the agents reconnect on their own, nobody is marked OFFLINE.
      for (const agent of [processAgent, dockerAgent])
        expect((await platform.node(agent.nodeId)).status).toBe("ONLINE");
      await waitFor(
        "both agents syncing with the new Brain",
        async () => (await platform.nodes()).every((n) => n.status === "ONLINE"),
        { timeoutMs: 30_000 },
      );
      const after = await platform.instances();
      expect(after.map((i) => [i.id, i.state, i.nodeId]).sort()).toEqual(
        before.map((i) => [i.id, i.state, i.nodeId]).sort(),
      );
      for (const { id, agent } of ids) {
        expect(JSON.stringify(await platform.events(id))).toBe(eventsBefore.get(id));
        expect(await agent().serverIdentity(id)).toBe(identities.get(id));
      }
      // Commands still reach both nodes, once each.
      for (const { id } of [ids[0]!, ids[2]!]) {
        expect((await platform.api("POST", `/instances/${id}/stop`)).status).toBe(202);
        await platform.waitForState(id, "STOPPED");
        const events = (await platform.events(id)).map((e) => e.to);
        expect(events.filter((s) => s === "STOPPING")).toHaveLength(1);
        expect(events.filter((s) => s === "STOPPED")).toHaveLength(1);
      }
      // Event sequences per instance are strictly increasing (no duplicates).
      for (const { id } of ids) {
        const seqs = (await platform.events(id)).map((e) => e.seq);
        expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
        expect(new Set(seqs).size).toBe(seqs.length);
      }
      // The agents never died.
      expect(processAgent.process!.exited).toBe(false);
      expect(dockerAgent.process!.exited).toBe(false);
    });
  },
);
