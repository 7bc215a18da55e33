/**
 * Docker engine faults with real processes: a Brain (SQLite file), an agent
 * with the Docker runtime and S3 storage, real containers.
 *
 * The agent reaches the engine through a socket proxy (`support/docker-engine.ts`)
 * the test stops (the socket is gone, as when `dockerd` stops) or hangs
 * (connections accepted, nothing answered, as when `dockerd` is paused with
 * `SIGSTOP`). Stopping or pausing the shared engine itself broke the Docker
 * suites running at the same time, so the faults are confined to this agent.
 */
import { join } from "node:path";
import { testServiceSkipReason } from "@orchestrator/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reservationProblems, withBrainDatabase } from "./support/brain-database.js";
import { stopAllCliProcesses, waitFor } from "./support/cli-process.js";
import { EngineSocketProxy, engineSocketPath } from "./support/docker-engine.js";
import { type AgentHandle, Platform } from "./support/platform.js";

const socket = engineSocketPath();
const skip =
  testServiceSkipReason("docker") ??
  testServiceSkipReason("s3") ??
  (socket ? null : "the Docker engine is not on a Unix socket (ORCH_TEST_DOCKER)");
if (skip) console.warn(`[resilience] Docker engine faults: ${skip}`);

interface CommandOutcome {
  id: string;
  type: string;
  status: string;
  message: string | null;
  /** Delivery to result, in ms. */
  tookMs: number;
}

interface NodeWithRuntimes {
  status: string;
  unavailableRuntimes: { kind: string; available: boolean; reason?: string }[];
}

describe.skipIf(skip !== null)(
  "Docker engine faults (real processes)",
  { timeout: 120_000 },
  () => {
    let platform: Platform;
    let agent: AgentHandle;
    let proxy: EngineSocketProxy;

    /** The outbox's last command of an instance, once it has a result. */
    const answered = (instanceId: string, type: string, after: number, timeoutMs = 30_000) =>
      waitFor(
        `${type} of ${instanceId} answered`,
        () =>
          withBrainDatabase(platform, async (db) => {
            const row = await db
              .selectFrom("orch_commands")
              .select(["id", "type", "status", "result_message", "delivered_at", "completed_at"])
              .where("instance_id", "=", instanceId)
              .where("type", "=", type)
              .where("created_at", ">=", after)
              .orderBy("ordinal", "desc")
              .executeTakeFirst();
            if (!row || row.completed_at === null || row.delivered_at === null) return null;
            return {
              id: row.id,
              type: row.type,
              status: row.status,
              message: row.result_message,
              tookMs: Number(row.completed_at) - Number(row.delivered_at),
            } satisfies CommandOutcome;
          }),
        { timeoutMs, context: () => platform.diagnostics() },
      );

    const node = async () =>
      (await platform.api<NodeWithRuntimes>("GET", `/nodes/${agent.nodeId}`)).body;

    /** Checks that hold after every fault. */
    async function invariants(): Promise<void> {
      for (const instance of await platform.instances()) {
        const seqs = (await platform.events(instance.id)).map((e) => e.seq);
        expect(new Set(seqs).size).toBe(seqs.length);
        expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
      }
      expect(await reservationProblems(platform)).toEqual([]);
      expect(agent.process!.exited, "the agent process is alive").toBe(false);
      expect(platform.brain!.exited, "the Brain process is alive").toBe(false);
      expect((await node()).status).toBe("ONLINE");
    }

    beforeAll(async () => {
      platform = await Platform.started("sqlite");
      const pushed = await platform.pushTemplate({ name: "df-quick", runtime: "docker" });
      expect(pushed.code, pushed.output).toBe(0);
      proxy = new EngineSocketProxy(join(platform.dir, "engine.sock"), socket!);
      await proxy.start();
      agent = await platform.addAgent("df-agent", "docker", "42900-42999", {
        DOCKER_HOST: proxy.dockerHost,
      });
    }, 120_000);

    afterAll(async () => {
      proxy?.resume();
      try {
        await proxy?.start(); // the agent must reach the engine to clean up
        await platform?.dispose();
      } finally {
        await proxy?.stop();
        await stopAllCliProcesses();
      }
    }, 120_000);

    it("engine stopped → the agent stays up and reports the runtime unavailable, a start fails fast with a retryable error, nothing is placed there, the running server is untouched; engine back → available, a new start works", async () => {
      const running = await platform.createInstance("df-quick", "keeps-running");
      const stopped = await platform.createInstance("df-quick", "to-start");
      await platform.waitForState(running, "RUNNING");
      await platform.waitForState(stopped, "RUNNING");
      const identity = await agent.serverIdentity(running);
      expect((await platform.api("POST", `/instances/${stopped}/stop`)).status).toBe(202);
      await platform.waitForState(stopped, "STOPPED");

      await proxy.stop();
      let pending: string;
      try {
        const unavailable = await waitFor(
          "the node to show its Docker runtime unavailable",
          async () => {
            const current = await node();
            return current.unavailableRuntimes.find((r) => r.kind === "docker") ?? null;
          },
          { timeoutMs: 15_000 },
        );
        expect(unavailable.available).toBe(false);
        expect(unavailable.reason).toMatch(/Docker engine is unreachable/);

        const before = Date.now();
        expect((await platform.api("POST", `/instances/${stopped}/start`)).status).toBe(202);
        const start = await answered(stopped, "start", before);
        expect(start.status).toBe("failed");
        expect(start.message).toMatch(/the Docker engine is unreachable \(E[A-Z]+\)/);
        expect(start.tookMs).toBeLessThan(2_000); // fast: not a hang until some request timeout
        expect((await platform.instance(stopped)).state).toBe("STOPPED"); // nothing half-done

        // The scheduler avoids the node while its runtime is down.
        pending = await platform.createInstance("df-quick", "while-down");
        const waiting = await waitFor("the placement explanation", async () => {
          const instance = (await platform.api("GET", `/instances/${pending}`)).body as {
            state: string;
            nodeId: string | null;
            pendingPlacement: unknown;
          };
          return instance.pendingPlacement ? instance : null;
        });
        expect(waiting.state).toBe("REQUESTED");
        expect(waiting.nodeId).toBeNull();
        expect(JSON.stringify(waiting.pendingPlacement)).toContain("runtime docker unavailable");

        expect(agent.process!.exited).toBe(false);
        expect((await node()).status).toBe("ONLINE");
        expect((await platform.instance(running)).state).toBe("RUNNING");
      } finally {
        await proxy.start();
      }
      await waitFor(
        "the node to show its Docker runtime available again",
        async () => (await node()).unavailableRuntimes.length === 0,
        { timeoutMs: 15_000 },
      );
      expect((await platform.api("POST", `/instances/${stopped}/start`)).status).toBe(202);
      await platform.waitForState(stopped, "RUNNING");
      await platform.waitForState(pending, "RUNNING");
      expect(await agent.serverIdentity(running)).toBe(identity);
      const states = (await platform.events(running)).map((e) => e.to);
      expect(states.filter((s) => s === "STARTING")).toHaveLength(1);
      await invariants();
    });

    it("engine hung (accepts connections, answers nothing) → engine calls time out within their deadline, the agent stays up; engine answers again → a new start works, running servers untouched", async () => {
      const running = await platform.createInstance("df-quick", "hung-keeps-running");
      const stopped = await platform.createInstance("df-quick", "hung-to-start");
      await platform.waitForState(running, "RUNNING");
      await platform.waitForState(stopped, "RUNNING");
      const identity = await agent.serverIdentity(running);
      expect((await platform.api("POST", `/instances/${stopped}/stop`)).status).toBe(202);
      await platform.waitForState(stopped, "STOPPED");

      const before = Date.now();
      proxy.hang();
      let start: CommandOutcome;
      try {
        expect((await platform.api("POST", `/instances/${stopped}/start`)).status).toBe(202);
        start = await answered(stopped, "start", before, 12_000);
        // The agent's probe times out too: the node shows the runtime unavailable.
        const hung = await waitFor(
          "the node to show its Docker runtime unavailable",
          async () => (await node()).unavailableRuntimes.find((r) => r.kind === "docker") ?? null,
          { timeoutMs: 20_000 },
        );
        expect(hung.reason).toMatch(/did not answer|has not answered/);
        expect((await node()).status).toBe("ONLINE");
      } finally {
        proxy.resume();
      }
      await waitFor(
        "the node to show its Docker runtime available again",
        async () => (await node()).unavailableRuntimes.length === 0,
        { timeoutMs: 15_000 },
      );
      expect(start.status).toBe("failed");
      expect(start.message).toMatch(/the Docker engine did not answer .* within 5000 ms/);
      // Bounded by the runtime's 5 s deadline (plus the sync round trip), not a hang.
      expect(start.tookMs).toBeLessThan(8_000);
      expect(agent.process!.exited).toBe(false);
      expect((await platform.instance(stopped)).state).toBe("STOPPED");

      expect((await platform.api("POST", `/instances/${stopped}/start`)).status).toBe(202);
      await platform.waitForState(stopped, "RUNNING");
      expect(await agent.serverIdentity(running)).toBe(identity);
      expect((await platform.instance(running)).state).toBe("RUNNING");
      await invariants();
    });

    it("agent (re)started while the engine is stopped → it starts and stays up, fails no instance, shows the runtime unavailable; engine back → the running container is re-attached (same one) and commands work", async () => {
      const id = await platform.createInstance("df-quick", "restart-while-down");
      await platform.waitForState(id, "RUNNING");
      const identity = await agent.serverIdentity(id);
      await agent.stop();
      await proxy.stop();
      try {
        await agent.start(); // used to exit: the runtime's first call failed during recovery
        await waitFor(
          "the node to show its Docker runtime unavailable",
          async () => (await node()).unavailableRuntimes.some((r) => r.kind === "docker"),
          { timeoutMs: 15_000, context: () => platform.diagnostics() },
        );
        expect((await node()).status).toBe("ONLINE");
        expect((await platform.instance(id)).state).toBe("RUNNING"); // not failed for the outage
        expect(agent.process!.exited).toBe(false);
      } finally {
        await proxy.start();
      }
      await waitFor(
        "the node to show its Docker runtime available again",
        async () => (await node()).unavailableRuntimes.length === 0,
        { timeoutMs: 15_000 },
      );
      expect(await agent.serverIdentity(id)).toBe(identity);
      expect((await platform.api("POST", `/instances/${id}/stop`)).status).toBe(202);
      await platform.waitForState(id, "STOPPED");
      const states = (await platform.events(id)).map((e) => e.to);
      expect(states).not.toContain("FAILED");
      expect(states.filter((s) => s === "STARTING")).toHaveLength(1);
      await invariants();
    });
  },
);
