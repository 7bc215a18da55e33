/**
 * Agent faults with real processes (Brain on a SQLite file, one agent with the
 * process runtime and folder storage — no external service needed): killed
 * mid-start, paused shorter and longer than the offline timeout.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep, stopAllCliProcesses, waitFor } from "./support/cli-process.js";
import { type AgentHandle, OFFLINE_AFTER_MS, Platform, SH_SERVER } from "./support/platform.js";
import { snapshot } from "./support/snapshot.js";

/** Checks that hold after every fault. */
async function invariants(platform: Platform, agent: AgentHandle): Promise<void> {
  const instances = await platform.instances();
  for (const instance of instances) {
    const events = await platform.events(instance.id);
    const seqs = events.map((e) => e.seq);
    expect(new Set(seqs).size, `duplicate events for ${instance.id}`).toBe(seqs.length);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    // Each transition chains from the previous one.
    for (let i = 1; i < events.length; i++) expect(events[i]!.from).toBe(events[i - 1]!.to);
  }
  // At most one running copy per instance: one run record per instance, and
  // no server process of this agent that the Brain does not know.
  const known = new Set(instances.map((i) => i.id));
  for (const entry of await readdir(join(agent.dataDir, "runtime")).catch(() => [])) {
    if (entry.startsWith(".")) continue;
    expect(known.has(entry), `runtime entry ${entry} unknown to the Brain`).toBe(true);
  }
  expect(agent.process!.exited, "the agent process is alive").toBe(false);
  expect(platform.brain!.exited, "the Brain process is alive").toBe(false);
}

describe("agent faults (real processes)", { timeout: 120_000 }, () => {
  let platform: Platform;
  let agent: AgentHandle;
  let before: Record<string, string>;

  beforeAll(async () => {
    platform = await Platform.create("sqlite");
    await platform.startBrain();
    await platform.login();
    const quick = await platform.pushTemplate({ name: "af-quick", runtime: "process" });
    expect(quick.code, quick.output).toBe(0);
    // Ready only after a few seconds: leaves time to kill the agent mid-start.
    const slow = await platform.pushTemplate({
      name: "af-slow",
      runtime: "process",
      files: { "server.sh": `sleep 6\n${SH_SERVER}` },
    });
    expect(slow.code, slow.output).toBe(0);
    agent = await platform.addAgent("af-agent", "process", "42300-42399");
    before = await snapshot([platform.folderStorage, join(platform.dir, "sources")]);
  }, 120_000);

  afterAll(async () => {
    try {
      await platform?.dispose();
    } finally {
      await stopAllCliProcesses();
    }
  }, 120_000);

  it("agent SIGKILL mid-start, restarted → the same server becomes RUNNING (no second start)", async () => {
    const id = await platform.createInstance("af-slow", "slow-1");
    await platform.waitForState(id, "STARTING");
    // The server process exists (its readiness line is still seconds away).
    const identity = await waitFor("the server's run record", () => agent.serverIdentity(id));
    await agent.crash();
    expect((await platform.instance(id)).state).toBe("STARTING");
    await agent.start();
    const running = await platform.waitForState(id, "RUNNING");
    expect(running.nodeId).toBe(agent.nodeId);
    expect(await agent.serverIdentity(id)).toBe(identity);
    const states = (await platform.events(id)).map((e) => e.to);
    expect(states.filter((s) => s === "STARTING")).toHaveLength(1);
    expect(states.filter((s) => s === "PREPARING")).toHaveLength(1);
    expect(states).not.toContain("FAILED");
    await invariants(platform, agent);
  });

  it("agent paused (SIGSTOP) shorter than the offline timeout → stays ONLINE; a stop sent meanwhile runs exactly once", async () => {
    const id = await platform.createInstance("af-quick", "pause-short");
    await platform.waitForState(id, "RUNNING");
    agent.process!.kill("SIGSTOP");
    try {
      expect((await platform.api("POST", `/instances/${id}/stop`)).status).toBe(202);
      await sleep(OFFLINE_AFTER_MS / 3);
      expect((await platform.node(agent.nodeId)).status).toBe("ONLINE");
    } finally {
      agent.process!.kill("SIGCONT");
    }
    await platform.waitForState(id, "STOPPED");
    const states = (await platform.events(id)).map((e) => e.to);
    expect(states.filter((s) => s === "STOPPING")).toHaveLength(1);
    expect(states).not.toContain("LOST");
    // A start after that is a new command, executed too.
    expect((await platform.api("POST", `/instances/${id}/start`)).status).toBe(202);
    await platform.waitForState(id, "RUNNING");
    await invariants(platform, agent);
  });

  it("agent paused (SIGSTOP) past the offline timeout → OFFLINE and LOST, SIGCONT → ONLINE and RUNNING without restart", async () => {
    const id = await platform.createInstance("af-quick", "pause-long");
    await platform.waitForState(id, "RUNNING");
    const identity = await agent.serverIdentity(id);
    agent.process!.kill("SIGSTOP");
    try {
      await platform.waitForNode(agent.nodeId, "OFFLINE", OFFLINE_AFTER_MS * 4);
      await platform.waitForState(id, "LOST", 10_000);
      // The server keeps running while its agent is away.
      expect(await agent.serverIdentity(id)).toBe(identity);
    } finally {
      agent.process!.kill("SIGCONT");
    }
    await platform.waitForNode(agent.nodeId, "ONLINE");
    await platform.waitForState(id, "RUNNING");
    expect(await agent.serverIdentity(id)).toBe(identity);
    const states = (await platform.events(id)).map((e) => e.to);
    expect(states.filter((s) => s === "STARTING")).toHaveLength(1);
    expect(states.slice(-2)).toEqual(["LOST", "RUNNING"]);
    await invariants(platform, agent);
  });

  it("no file outside the instance sandboxes changed (template storage and sources byte for byte)", async () => {
    expect(await snapshot([platform.folderStorage, join(platform.dir, "sources")])).toEqual(before);
  });
});
