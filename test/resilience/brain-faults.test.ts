/**
 * Brain faults with real processes on MariaDB (the production database): the
 * Brain down longer than the offline timeout (startup grace), the Brain
 * killed between placement and dispatch (the stored command re-delivered with
 * its id, executed once), and two Brains on one database with one paused past
 * its lease (fencing: nothing done twice).
 */
import { testServiceSkipReason } from "@orchestrator/core/testing";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CliProcess,
  freePort,
  sleep,
  stopAllCliProcesses,
  waitFor,
} from "./support/cli-process.js";
import { type AgentHandle, OFFLINE_AFTER_MS, Platform } from "./support/platform.js";

const skip = testServiceSkipReason("mysql");
if (skip) console.warn(`[resilience] Brain faults: ${skip}`);

interface CommandRow {
  id: string;
  instance_id: string;
  type: string;
  status: string;
  attempts: number;
}

describe.skipIf(skip !== null)(
  "Brain faults (real processes, MariaDB)",
  { timeout: 120_000 },
  () => {
    let platform: Platform;
    let agent: AgentHandle;
    let db: mysql.Connection;

    const commandsOf = async (instanceId: string): Promise<CommandRow[]> => {
      const [rows] = await db.query(
        "SELECT id, instance_id, type, status, attempts FROM orch_commands WHERE instance_id = ? ORDER BY ordinal",
        [instanceId],
      );
      return rows as CommandRow[];
    };

    /** Watches node statuses and instance events for `ms`: returns every OFFLINE/LOST seen. */
    async function watchForOutage(ms: number): Promise<string[]> {
      const seen: string[] = [];
      const until = Date.now() + ms;
      while (Date.now() < until) {
        for (const node of await platform.nodes())
          if (node.status !== "ONLINE") seen.push(`${node.name} ${node.status}`);
        for (const instance of await platform.instances())
          if (instance.state === "LOST") seen.push(`${instance.name} LOST`);
        await sleep(200);
      }
      return seen;
    }

    beforeAll(async () => {
      platform = await Platform.started("mysql");
      const pushed = await platform.pushTemplate({ name: "bf-quick", runtime: "process" });
      expect(pushed.code, pushed.output).toBe(0);
      agent = await platform.addAgent("bf-agent", "process", "42400-42499");
      db = await mysql.createConnection(platform.databaseUrl);
    }, 120_000);

    afterAll(async () => {
      try {
        await db?.end();
        await platform?.dispose();
      } finally {
        await stopAllCliProcesses();
      }
    }, 120_000);

    it("Brain stopped longer than the offline timeout, then started → no node OFFLINE, no instance LOST (startup grace)", async () => {
      const id = await platform.createInstance("bf-quick", "grace-1");
      await platform.waitForState(id, "RUNNING");
      const identity = await agent.serverIdentity(id);
      expect(await platform.brain!.stop()).toBe(0);
      await sleep(OFFLINE_AFTER_MS * 2); // the agent keeps retrying meanwhile
      await platform.startBrain();
      // Well past the grace window (one offline timeout) plus a liveness round.
      expect(await watchForOutage(OFFLINE_AFTER_MS * 2)).toEqual([]);
      expect((await platform.instance(id)).state).toBe("RUNNING");
      expect(await agent.serverIdentity(id)).toBe(identity);
      expect(agent.process!.exited).toBe(false);
    });

    it("Brain paused (SIGSTOP) longer than the offline timeout, then resumed → no node OFFLINE (it suspects itself)", async () => {
      const brain = platform.brain!;
      brain.kill("SIGSTOP");
      try {
        await sleep(OFFLINE_AFTER_MS * 2);
      } finally {
        brain.kill("SIGCONT");
      }
      expect(await watchForOutage(OFFLINE_AFTER_MS * 2)).toEqual([]);
    });

    it("Brain SIGKILL between placement and dispatch → the stored command is delivered after the restart with the same id, executed once", async () => {
      agent.process!.kill("SIGSTOP"); // the node cannot fetch the command before the crash
      let prepare: CommandRow;
      let id: string;
      try {
        id = await platform.createInstance("bf-quick", "dispatch-1");
        prepare = await waitFor("the prepare command in the outbox", async () => {
          const rows = await commandsOf(id);
          return rows.length === 1 && rows[0]!.type === "prepare" ? rows[0]! : null;
        });
        // Pending, or already handed to the (paused) agent's parked sync: not acknowledged either way.
        expect(["pending", "delivered"]).toContain(prepare.status);
        expect((await platform.instance(id)).state).toBe("SCHEDULED");
        await platform.brain!.crash();
        await platform.startBrain();
      } finally {
        agent.process!.kill("SIGCONT");
      }
      await platform.waitForState(id, "RUNNING");
      // The start's result may arrive just after the RUNNING report.
      const rows = await waitFor("both commands completed", async () => {
        const listed = await commandsOf(id);
        return listed.length === 2 &&
          listed.every((r) => r.status === "succeeded" || r.status === "failed")
          ? listed
          : null;
      });
      expect(rows.map((r) => [r.type, r.status])).toEqual([
        ["prepare", "succeeded"],
        ["start", "succeeded"],
      ]);
      expect(rows[0]!.id).toBe(prepare.id);
      const states = (await platform.events(id)).map((e) => e.to);
      expect(states.filter((s) => s === "SCHEDULED")).toHaveLength(1);
      expect(states.filter((s) => s === "PREPARING")).toHaveLength(1);
      expect(states.filter((s) => s === "STARTING")).toHaveLength(1);
    });
  },
);

/**
 * Fencing on its own platform, with a long offline timeout: liveness is kept in
 * each Brain's memory, so a Brain that holds the liveness lease but is not the
 * one the agent talks to would mark the node OFFLINE (a gap documented in
 * docs/reliability.md) — that is not what this test is about.
 */
describe.skipIf(skip !== null)(
  "two Brains on one MariaDB (real processes)",
  { timeout: 120_000 },
  () => {
    let platform: Platform;
    let db: mysql.Connection;
    let fenceAgentNodeId = "";

    const commandsOf = async (instanceId: string): Promise<CommandRow[]> => {
      const [rows] = await db.query(
        "SELECT id, instance_id, type, status, attempts FROM orch_commands WHERE instance_id = ? ORDER BY ordinal",
        [instanceId],
      );
      return rows as CommandRow[];
    };

    beforeAll(async () => {
      platform = await Platform.started("mysql", { ORCH_OFFLINE_AFTER_MS: "60000" });
      const pushed = await platform.pushTemplate({ name: "fence-quick", runtime: "process" });
      expect(pushed.code, pushed.output).toBe(0);
      fenceAgentNodeId = (await platform.addAgent("fence-agent", "process", "42500-42599")).nodeId;
      db = await mysql.createConnection(platform.databaseUrl);
    }, 120_000);

    afterAll(async () => {
      try {
        await db?.end();
        await platform?.dispose();
      } finally {
        await stopAllCliProcesses();
      }
    }, 120_000);

    it("two Brains on one database, one paused past its lease → the other takes over, the stale one does nothing twice (fencing)", async () => {
      // Brain A (the platform's) holds the loop leases; B joins on another port.
      const portB = await freePort();
      const brainB = await CliProcess.start(
        "brain B",
        ["brain"],
        platform.brainEnv({ ORCH_PORT: String(portB), ORCH_OFFLINE_AFTER_MS: "60000" }),
        { cwd: platform.dir, readyText: "Brain running at" },
      );
      try {
        const brainA = platform.brain!;
        const schedulerLease = async () => {
          const [rows] = await db.query(
            "SELECT holder, epoch FROM orch_leases WHERE name = 'scheduler'",
          );
          return (rows as { holder: string; epoch: number }[])[0]!;
        };
        const leaseBefore = await waitFor("A holds the scheduler lease", schedulerLease);
        brainA.kill("SIGSTOP");
        let ids: string[] = [];
        try {
          // Past the lease (5 s) and the agent's own silence: B schedules instead of A.
          const urlA = platform.url;
          Object.defineProperty(platform, "url", {
            value: `http://127.0.0.1:${portB}`,
            configurable: true,
          });
          try {
            ids = [
              await platform.createInstance("fence-quick", "fence-1"),
              await platform.createInstance("fence-quick", "fence-2"),
            ];
            for (const id of ids)
              await waitFor(`B places ${id}`, async () => (await commandsOf(id)).length > 0, {
                timeoutMs: 30_000,
                context: () => `--- brain B ---\n${brainB.output}\n${platform.diagnostics()}`,
              });
          } finally {
            Object.defineProperty(platform, "url", { value: urlA, configurable: true });
          }
        } finally {
          brainA.kill("SIGCONT");
        }
        // A resumes with stale leases: let it run several rounds.
        await sleep(3_000);
        for (const id of ids) {
          // The command placed by B is executed by the node (through A), once.
          await waitFor(
            `the prepare of ${id} executed`,
            async () => (await commandsOf(id))[0]?.status === "succeeded",
            { timeoutMs: 60_000 },
          );
          const rows = await commandsOf(id);
          expect(rows.filter((r) => r.type === "prepare")).toHaveLength(1);
          expect(rows[0]!.attempts).toBe(1);
          // RUNNING promptly through the resumed Brain (syncs the agent abandoned
          // while it was paused no longer cost a redelivery or a stale
          // inventory), each step once.
          await platform.waitForState(id, "RUNNING", 20_000);
          const states = (await platform.events(id)).map((e) => e.to);
          expect(states.filter((s) => s === "SCHEDULED")).toHaveLength(1);
          expect(states.filter((s) => s === "PREPARING")).toHaveLength(1);
          expect(states.filter((s) => s === "STARTING")).toHaveLength(1);
          expect(states).not.toContain("FAILED");
          const instance = await platform.instance(id);
          expect(instance.nodeId).toBe(fenceAgentNodeId);
          expect((instance as unknown as { epoch: number }).epoch).toBe(1);
        }
        // B took the lease over with a higher fencing epoch, and kept it after A resumed.
        const leaseAfter = await schedulerLease();
        expect(leaseAfter.holder).not.toBe(leaseBefore.holder);
        expect(Number(leaseAfter.epoch)).toBeGreaterThan(Number(leaseBefore.epoch));
        expect(brainB.exited).toBe(false);
        expect(platform.brain!.exited).toBe(false);
      } finally {
        await brainB.stop();
      }
    });
  },
);
