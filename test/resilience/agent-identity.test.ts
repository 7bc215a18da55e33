/**
 * Duplicate agent identity with real processes: a second `orchestrator agent`
 * started with a copy of the first one's node credential (a cloned VM image,
 * a second service unit pointed at a copied state dir) while the first runs.
 * (Two processes on the very same state dir are stopped earlier, locally: the
 * template cache folder is locked by the first.) The Brain on a SQLite file,
 * process runtime, folder storage — no external service needed.
 */

import { copyFile, mkdir, readdir } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CliProcess, sleep, stopAllCliProcesses, waitFor } from "./support/cli-process.js";
import { AgentHandle, Platform, TIMINGS } from "./support/platform.js";

const REFUSED = "another agent process holds this node's credential";
/** The Brain hands a node over after the holder is silent for two heartbeats + 2 s (agentSessionWindowMs). */
const WINDOW_MS = 2 * Number(TIMINGS.ORCH_HEARTBEAT_INTERVAL_MS) + 2_000;

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    request.on("data", (chunk) => (text += chunk));
    request.on("end", () => resolve(text));
  });
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

describe("duplicate agent identity (real processes)", { timeout: 120_000 }, () => {
  let platform: Platform;
  let agent: AgentHandle;
  let duplicate: CliProcess;
  let hookServer: ReturnType<typeof createServer>;
  const hooks: { type: string; alert?: Record<string, unknown> }[] = [];
  let first: string;
  let copyDir: string;

  beforeAll(async () => {
    hookServer = createServer(async (request, response) => {
      hooks.push(JSON.parse(await readBody(request)));
      response.writeHead(204).end();
    });
    await new Promise<void>((resolve) => hookServer.listen(0, "127.0.0.1", resolve));
    const { port } = hookServer.address() as AddressInfo;
    platform = await Platform.create("sqlite");
    await platform.startBrain({
      ORCH_WEBHOOKS: JSON.stringify([
        {
          url: `http://127.0.0.1:${port}/hook`,
          secret: "identity-webhook-secret",
          events: ["node.identity_conflict"],
        },
      ]),
    });
    await platform.login();
    const pushed = await platform.pushTemplate({ name: "ai-quick", runtime: "process" });
    expect(pushed.code, pushed.output).toBe(0);
    agent = await platform.addAgent("ai-agent", "process", "43100-43199");
    first = await platform.createInstance("ai-quick", "ai-first");
    await platform.waitForState(first, "RUNNING");
  }, 120_000);

  afterAll(async () => {
    try {
      // The Brain destroys what the live duplicate runs; a dead one's servers are killed by hand.
      if (platform && copyDir && duplicate?.exited)
        await new AgentHandle(platform, "ai-agent-copy", "process", "", {}).killLeftovers();
      await platform?.dispose();
    } finally {
      await stopAllCliProcesses();
      await new Promise((resolve) => hookServer?.close(resolve));
    }
  }, 120_000);

  it("same credential, second process → refused (409), operators alerted, it neither crashes nor hammers", async () => {
    copyDir = join(platform.dir, "agents", "ai-agent-copy");
    await mkdir(copyDir, { recursive: true, mode: 0o700 });
    await copyFile(join(agent.dataDir, "credential.json"), join(copyDir, "credential.json"));
    duplicate = await CliProcess.start(
      "agent ai-agent (duplicate)",
      ["agent"],
      { ...agent.env(null), ORCH_DATA_DIR: copyDir },
      { cwd: platform.dir, readyText: REFUSED },
    );
    expect(duplicate.output).not.toContain("Agent running as node");

    const audit = await waitFor(
      "the conflict in the audit log",
      async () => {
        const listed = await platform.api<{ items: { details: Record<string, unknown> }[] }>(
          "GET",
          `/audit?action=node.identity-conflict&target=node:${agent.nodeId}`,
        );
        return listed.body.items.length > 0 ? listed.body.items : null;
      },
      { timeoutMs: 10_000 },
    );
    expect(audit[0]!.details).toMatchObject({ nodeName: "ai-agent" });
    const hook = await waitFor(
      "the webhook alert",
      async () => hooks.find((h) => h.type === "node.identity_conflict") ?? null,
      { timeoutMs: 10_000 },
    );
    expect(hook.alert).toMatchObject({ nodeId: agent.nodeId, nodeName: "ai-agent" });

    // Backing off: it asks about once per window, not in a loop.
    const before = count(duplicate.output, REFUSED);
    await sleep(WINDOW_MS);
    // The retry delay is the Brain's retry-after (≈ the window) plus jitter: at most 2 in a window.
    expect(count(duplicate.output, REFUSED) - before).toBeLessThanOrEqual(2);
    expect(duplicate.exited, "the duplicate stays up").toBe(false);
    // One alert per refused process, not one per retry.
    expect(hooks.filter((h) => h.type === "node.identity_conflict")).toHaveLength(1);
  });

  it("the first process keeps serving the node; the refused one executes nothing", async () => {
    const second = await platform.createInstance("ai-quick", "ai-second");
    await platform.waitForState(second, "RUNNING");
    expect((await platform.api("POST", `/instances/${first}/stop`)).status).toBe(202);
    await platform.waitForState(first, "STOPPED");
    for (const id of [first, second]) {
      const states = (await platform.events(id)).map((e) => e.to);
      expect(states.filter((s) => s === "STARTING")).toHaveLength(1);
      expect(states).not.toContain("FAILED");
    }
    expect((await platform.node(agent.nodeId)).status).toBe("ONLINE");
    expect(duplicate.output).not.toContain("Agent running as node");
    // Nothing prepared or started by the refused process.
    expect(await readdir(join(copyDir, "instances")).catch(() => [])).toEqual([]);
    expect(await readdir(join(copyDir, "runtime")).catch(() => [])).toEqual([]);
  });

  it("first process killed → the waiting one takes the node over once the window passes", async () => {
    // A clean slate: the copy has no state of its own to find the old servers with.
    for (const instance of await platform.instances())
      if (instance.state !== "DESTROYED") await platform.api("DELETE", `/instances/${instance.id}`);
    for (const instance of await platform.instances())
      await platform.waitForState(instance.id, "DESTROYED");
    await agent.crash();
    const killedAt = Date.now();
    await waitFor("the duplicate to take over", async () =>
      duplicate.output.includes("Agent running as node"),
    );
    // The window, then at most one retry delay (window + jitter ≤ 1.5 window), plus the start.
    expect(Date.now() - killedAt).toBeLessThan(3 * WINDOW_MS + 5_000);
    expect((await platform.node(agent.nodeId)).status).toBe("ONLINE");
    const third = await platform.createInstance("ai-quick", "ai-third");
    const running = await platform.waitForState(third, "RUNNING");
    expect(running.nodeId).toBe(agent.nodeId);
    // Served by the former duplicate: the server lives in its state dir.
    expect(await readdir(join(copyDir, "runtime"))).toContain(third);
    expect(duplicate.exited).toBe(false);
    expect(platform.brain!.exited).toBe(false);
  });

  it("agent SIGKILLed and restarted on its own state dir → continues its session at once (no refusal, no wait)", async () => {
    await duplicate.crash();
    const restartedAt = Date.now();
    duplicate = await CliProcess.start(
      "agent ai-agent (restarted)",
      ["agent"],
      { ...agent.env(null), ORCH_DATA_DIR: copyDir },
      { cwd: platform.dir, readyText: "Agent running as node" },
    );
    agent.process = duplicate;
    expect(duplicate.output).not.toContain(REFUSED);
    // Well inside the silence window it would otherwise have to wait out (start-up included).
    expect(Date.now() - restartedAt).toBeLessThan(WINDOW_MS + 10_000);
    const third = (await platform.instances()).find((i) => i.name === "ai-third")!;
    expect((await platform.api("POST", `/instances/${third.id}/stop`)).status).toBe(202);
    await platform.waitForState(third.id, "STOPPED");
    expect(duplicate.output).not.toContain(REFUSED);
  });
});
