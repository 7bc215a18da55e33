/**
 * Syncs an agent abandoned, read late by a stalled Brain (real Brain process,
 * SQLite file; the node is driven through the raw agent protocol so the test
 * decides exactly which requests are abandoned and in which order they arrive).
 *
 * An agent hangs up a parked sync when it has news. A Brain that stalled
 * (here: SIGSTOP) still reads that request when it resumes — Node's HTTP
 * server does not see the hang-up before it has answered — and, before the
 * fix, claimed commands for an answer nobody read (they waited for the 30 s
 * redelivery) and acted on an inventory older than what the agent had said
 * since (instances failed as "no longer on the node"). This was the root
 * cause of the "reports applied ~60 s late after a SIGSTOPped Brain resumed"
 * finding.
 */
import { connect } from "node:net";
import type { SyncRequest, SyncResponse } from "@orchestrator/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandsOf } from "./support/brain-database.js";
import { sleep, stopAllCliProcesses, waitFor } from "./support/cli-process.js";
import { Platform } from "./support/platform.js";

describe("abandoned agent syncs read late by a stalled Brain (real Brain process)", {
  timeout: 120_000,
}, () => {
  let platform: Platform;
  let credential = "";
  let nodeId = "";
  const session = "resilience-session-1";

  const request = (fields: Partial<SyncRequest>): SyncRequest => ({
    agentSessionId: session,
    inventory: [],
    reports: [],
    commandResults: [],
    logs: [],
    wait: false,
    ...fields,
  });

  const sync = async (fields: Partial<SyncRequest>): Promise<SyncResponse> => {
    const response = await fetch(`${platform.url}/api/v1/agent/sync`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${credential}` },
      body: JSON.stringify(request(fields)),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as SyncResponse;
  };

  /** Sends a sync and hangs up at once, while the Brain is paused: it reads it on resume. */
  const abandonWhileStalled = async (fields: Partial<SyncRequest>): Promise<void> => {
    const body = JSON.stringify(request(fields));
    platform.brain!.kill("SIGSTOP");
    try {
      const socket = connect(platform.brainPort, "127.0.0.1");
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write(
        [
          "POST /api/v1/agent/sync HTTP/1.1",
          "host: 127.0.0.1",
          "content-type: application/json",
          `authorization: Bearer ${credential}`,
          `content-length: ${Buffer.byteLength(body)}`,
          "",
          body,
        ].join("\r\n"),
      );
      await sleep(100);
      socket.destroy();
      await sleep(100);
    } finally {
      platform.brain!.kill("SIGCONT");
    }
  };

  beforeAll(async () => {
    platform = await Platform.started("sqlite");
    const pushed = await platform.pushTemplate({ name: "sf-quick", runtime: "process" });
    expect(pushed.code, pushed.output).toBe(0);
    const token = await platform.api("POST", "/nodes/join-tokens", {});
    const joined = await fetch(`${platform.url}/api/v1/agent/join`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        joinToken: token.body.secret,
        name: "raw-node",
        capacity: { memoryMb: 1024, cpu: 2, diskMb: 1024 },
        labels: {},
        portRange: { from: 43100, to: 43199 },
        reservedPorts: [],
        runtimes: ["process"],
        agentVersion: "0.1.0",
      }),
    });
    ({ nodeId, credential } = (await joined.json()) as { nodeId: string; credential: string });
    await sync({ syncNumber: 1, received: 0 });
  }, 120_000);

  afterAll(async () => {
    try {
      await platform?.dispose();
    } finally {
      await stopAllCliProcesses();
    }
  }, 60_000);

  it("commands claimed for an abandoned sync go out with the next sync at once (not after the 30 s redelivery); a sync older than one already taken up does nothing", async () => {
    const id = await platform.createInstance("sf-quick", "abandoned-1");
    const [pending] = await waitFor("the prepare in the outbox", async () => {
      const rows = await commandsOf(platform, id);
      return rows.length === 1 ? rows : null;
    });
    expect(pending).toMatchObject({ type: "prepare", status: "pending" });

    // Sync 2 is abandoned; the resumed Brain still reads it and hands it the prepare.
    await abandonWhileStalled({ syncNumber: 2, received: 1, wait: true });
    await waitFor("the abandoned sync to claim the prepare", async () => {
      const [row] = await commandsOf(platform, id);
      return row?.status === "delivered" ? row : null;
    });

    // Sync 3 says the agent's last answer was 1: the prepare comes again, at once.
    const started = Date.now();
    const third = await sync({ syncNumber: 3, received: 1, wait: true });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(third.commands.map((c) => [c.id, c.type])).toEqual([[pending!.id, "prepare"]]);

    // The node prepares it and says so (sync 4, having received answer 3).
    const fourth = await sync({
      syncNumber: 4,
      received: 3,
      inventory: [{ instanceId: id, state: "PREPARED", seq: 2, epoch: 1 }],
      reports: [
        {
          n: 1,
          instanceId: id,
          seq: 1,
          epoch: 1,
          trigger: "prepare",
          reason: "preparing",
          at: new Date().toISOString(),
        },
        {
          n: 2,
          instanceId: id,
          seq: 2,
          epoch: 1,
          trigger: "prepared",
          reason: "ready",
          at: new Date().toISOString(),
        },
      ],
      commandResults: [{ commandId: pending!.id, ok: true }],
    });
    expect(fourth.acknowledgedReports).toBe(2);
    // Answer 3 arrived: the prepare is not given again; the start PREPARED queued is.
    expect(fourth.commands.map((c) => c.type)).toEqual(["start"]);
    const start = fourth.commands[0]!;
    expect((await platform.instance(id)).state).toBe("PREPARED");

    // A sync older than one already taken up arrives late (inventory from
    // before the prepare): ignored — the instance is not failed, nothing claimed.
    const stale = await sync({ syncNumber: 2, received: 1, inventory: [], wait: false });
    expect(stale.commands).toEqual([]);
    await sleep(300);
    expect((await platform.instance(id)).state).toBe("PREPARED");
    const states = (await platform.events(id)).map((e) => e.to);
    expect(states).not.toContain("FAILED");
    const [prepare] = await commandsOf(platform, id);
    expect(prepare).toMatchObject({ status: "succeeded", attempts: 1 });

    // Answer 4 never arrived (received still 3): its start comes again, same id.
    const inventory = [{ instanceId: id, state: "PREPARED" as const, seq: 2, epoch: 1 }];
    const fifth = await sync({ syncNumber: 5, received: 3, inventory });
    expect(fifth.commands.map((c) => c.id)).toEqual([start.id]);
    // Answer 5 arrived: nothing again.
    expect((await sync({ syncNumber: 6, received: 5, inventory })).commands).toEqual([]);
    const rows = await commandsOf(platform, id);
    expect(rows.map((r) => [r.type, r.attempts])).toEqual([
      ["prepare", 1],
      ["start", 1],
    ]);

    // Clean up as a node would: the destroy runs, DESTROYED is reported.
    expect((await platform.api("DELETE", `/instances/${id}`)).status).toBe(202);
    const destroy = await waitFor("the destroy command", async () => {
      const answer = await sync({ syncNumber: 7, received: 6, inventory, wait: true });
      return answer.commands.find((c) => c.type === "destroy") ?? null;
    });
    await sync({
      syncNumber: 8,
      received: 7,
      reports: [
        {
          n: 3,
          instanceId: id,
          seq: 3,
          epoch: 1,
          trigger: "destroyed",
          reason: "destroyed",
          at: new Date().toISOString(),
        },
      ],
      commandResults: [{ commandId: destroy.id, ok: true }],
    });
    await platform.waitForState(id, "DESTROYED", 10_000);
    expect(nodeId).not.toBe("");
  });
});
