// biome-ignore-all lint/suspicious/noTemplateCurlyInString: templates hold literal ${VARIABLE} placeholders
/**
 * Agent faults with real processes (Brain on a SQLite file, one agent with the
 * process runtime and folder storage — no external service needed): killed
 * mid-prepare and mid-start, paused shorter and longer than the offline timeout.
 */
import { watch } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandsOf, reservationProblems } from "./support/brain-database.js";
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
  expect(await reservationProblems(platform), "port and capacity reservations").toEqual([]);
  expect(agent.process!.exited, "the agent process is alive").toBe(false);
  expect(platform.brain!.exited, "the Brain process is alive").toBe(false);
}

/** Files in the big template's layer: merging them takes long enough to be caught half-way. */
const BIG_FILES = 3000;

/** Lines of the agent's command ledger for one command id. */
async function ledgerLines(
  agent: AgentHandle,
  commandId: string,
): Promise<Record<string, unknown>[]> {
  const text = await readFile(join(agent.dataDir, "commands.jsonl"), "utf8");
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.id === commandId);
}

describe("agent faults (real processes)", { timeout: 120_000 }, () => {
  let platform: Platform;
  let agent: AgentHandle;
  let before: Record<string, string>;

  beforeAll(async () => {
    platform = await Platform.started("sqlite");
    const quick = await platform.pushTemplate({ name: "af-quick", runtime: "process" });
    expect(quick.code, quick.output).toBe(0);
    // Ready only after a few seconds: leaves time to kill the agent mid-start.
    const slow = await platform.pushTemplate({
      name: "af-slow",
      runtime: "process",
      files: { "server.sh": `sleep 6\n${SH_SERVER}` },
    });
    expect(slow.code, slow.output).toBe(0);
    // Many small files, substituted: the merge takes a few hundred milliseconds.
    const files: Record<string, string> = { "server.sh": SH_SERVER };
    for (let i = 0; i < BIG_FILES; i++)
      files[`data/d${i % 30}/f${i}.txt`] = `${"x".repeat(600)} \${INSTANCE_NAME} ${i}\n`;
    const big = await platform.pushTemplate({
      name: "af-big",
      runtime: "process",
      files,
      extra: { files: { substitute: ["data/**/*.txt"] } },
    });
    expect(big.code, big.output).toBe(0);
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

  it("agent SIGKILL mid-prepare (merging layers), restarted → the interrupted prepare is resumed when the Brain redelivers it: no half-merged directory used, executed to completion once, RUNNING with correct files", async () => {
    const instancesDir = join(agent.dataDir, "instances");
    // Freeze the agent the moment its merge creates the staging folder, then
    // SIGKILL it: the kill lands inside the merge, provably (checked below).
    let staging = "";
    const watcher = watch(instancesDir, (_event, name) => {
      if (staging || !name?.startsWith(".") || !name.includes(".orch-staging-")) return;
      staging = name;
      agent.process!.kill("SIGSTOP");
    });
    let id: string;
    try {
      id = await platform.createInstance("af-big", "big-1");
      await waitFor("the merge to begin", () => staging !== "", { intervalMs: 10 });
    } finally {
      watcher.close();
    }
    expect(staging.startsWith(`.${id}.orch-staging-`)).toBe(true);
    await agent.crash();
    // Proof the kill landed mid-merge: the staging folder is there, the instance folder is not.
    const left = await readdir(instancesDir);
    expect(left).toContain(staging);
    expect(left).not.toContain(id);
    expect(["SCHEDULED", "PREPARING"]).toContain((await platform.instance(id)).state);
    const [prepare] = await commandsOf(platform, id);
    expect(prepare).toMatchObject({ type: "prepare", status: "delivered", attempts: 1 });
    // The agent's ledger: the command began, no result.
    expect(await ledgerLines(agent, prepare!.id)).toEqual([
      expect.objectContaining({ id: prepare!.id, type: "prepare" }),
    ]);

    await agent.start();
    // The leftover is gone before anything runs; nothing half-merged is used.
    expect(await readdir(instancesDir)).not.toContain(staging);
    expect(await readdir(instancesDir)).not.toContain(id);
    // The Brain redelivers the unanswered prepare (same id); the agent resumes it.
    const running = await platform.waitForState(id, "RUNNING", 90_000);
    expect(running.nodeId).toBe(agent.nodeId);
    const rows = await waitFor("prepare and start answered", async () => {
      const listed = await commandsOf(platform, id);
      return listed.length === 2 && listed.every((r) => r.status === "succeeded") ? listed : null;
    });
    expect(rows.map((r) => [r.id, r.type, r.attempts])).toEqual([
      [prepare!.id, "prepare", 2],
      [rows[1]!.id, "start", 1],
    ]);
    // Executed to completion once: one result in the ledger, one PREPARING, one PREPARED.
    const lines = await ledgerLines(agent, prepare!.id);
    expect(lines.filter((line) => "result" in line)).toEqual([
      expect.objectContaining({ result: { ok: true } }),
    ]);
    const states = (await platform.events(id)).map((e) => e.to);
    expect(states).toEqual([
      "REQUESTED",
      "SCHEDULED",
      "PREPARING",
      "PREPARED",
      "STARTING",
      "RUNNING",
    ]);
    // The instance folder is the whole merge, substituted.
    const directory = join(instancesDir, id);
    let count = 0;
    for (let d = 0; d < 30; d++) count += (await readdir(join(directory, "data", `d${d}`))).length;
    expect(count).toBe(BIG_FILES);
    expect(await readFile(join(directory, "data", "d7", "f2977.txt"), "utf8")).toBe(
      `${"x".repeat(600)} big-1 2977\n`,
    );
    await invariants(platform, agent);
  });

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
