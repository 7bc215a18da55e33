// biome-ignore-all lint/suspicious/noTemplateCurlyInString: templates hold literal ${VARIABLE} placeholders
/**
 * The agent's side of the protocol additions, against a real Brain (HTTP on
 * loopback, SQLite in memory) with the process runtime: live stats of a
 * running server arrive over the Brain's SSE route with real figures; a
 * runtime that stops answering is reported and the Brain places nothing
 * there until it answers again; a second agent process on the same
 * credential waits without touching anything until the first is gone.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Brain, buildBrain, loadBrainConfig, TOKENS } from "@orchestrator/brain-server";
import type { InstanceStatsSample, Runtime } from "@orchestrator/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Agent, createAgent, defaultRuntime } from "../src/agent.js";
import { loadAgentConfig } from "../src/config/agent-config.js";
import { claimAgentSession } from "../src/sync/agent-session.js";
import { StatsSampler } from "../src/sync/stats-sampler.js";

const quiet = { info() {}, warn() {}, error() {} };

let brain: Brain;
let url: string;
let token: string;
let dir: string;
const agents: Agent[] = [];

async function api(method: string, path: string, body?: unknown) {
  const response = await fetch(`${url}/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function agentConfig(name: string, joinToken: string | null) {
  return loadAgentConfig({
    ORCH_BRAIN_URL: url,
    ...(joinToken ? { ORCH_JOIN_TOKEN: joinToken } : {}),
    ORCH_RUNTIME: "process",
    ORCH_STORAGE: "folder",
    ORCH_STORAGE_DIR: join(dir, "storage"),
    ORCH_DATA_DIR: join(dir, name),
    ORCH_NODE_NAME: name,
    ORCH_PORT_RANGE: "41200-41299",
    ORCH_CAPACITY_MEMORY_MB: "2048",
  });
}

async function joinToken(): Promise<string> {
  return (await api("POST", "/nodes/join-tokens", {})).body.secret as string;
}

async function running(name: string): Promise<string> {
  const created = await api("POST", "/instances", { template: "idle", name });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  await waitFor(
    `${name} RUNNING`,
    async () => (await api("GET", `/instances/${id}`)).body.state === "RUNNING",
  );
  return id;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "orch-agent-protocol-"));
  const layer = join(dir, "storage", "layers", "idle");
  await mkdir(layer, { recursive: true });
  await writeFile(
    join(layer, "server.sh"),
    ['echo "ready on $PORT"', "trap 'exit 0' TERM", "while true; do sleep 1; done", ""].join("\n"),
  );
  const config = loadBrainConfig({
    env: {},
    overrides: {
      databaseUrl: "sqlite::memory:",
      adminPassword: "an-admin-password",
      host: "127.0.0.1",
      port: 0,
      // Short: a refused agent retries after the session window (2 heartbeats + 2 s).
      heartbeatIntervalMs: 250,
      offlineAfterMs: 5000,
      syncWaitMs: 500,
    },
  });
  brain = await buildBrain(config, { logger: false });
  await brain.ensureAdmin();
  brain.startLoops();
  url = await brain.listen();
  const login = await fetch(`${url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password: "an-admin-password" }),
  }).then((r) => r.json() as Promise<{ token: string }>);
  token = login.token;
  const template = await api("POST", "/templates", {
    definition: {
      name: "idle",
      layers: ["idle"],
      runtime: { process: { command: ["sh", "server.sh"] } },
      env: { PORT: "${PORT}" },
      ports: [{ name: "game", protocol: "tcp" }],
      resources: { memoryMb: 64, cpu: 0.1, diskMb: 10 },
      readiness: { log: "ready on", timeoutSeconds: 10 },
      stop: { input: null, signal: "SIGTERM", timeoutSeconds: 5 },
      restart: { policy: "never", maxRestarts: 0, windowSeconds: 60 },
    },
  });
  expect(template.status).toBe(201);
});

afterAll(async () => {
  for (const agent of agents) await agent.stop().catch(() => undefined);
  // Stopped agents leave their servers running (as they should): remove them here.
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!existsSync(join(dir, name, "runtime"))) continue;
    const runtime = defaultRuntime(agentConfig(name, null));
    for (const instance of await runtime.list()) await runtime.remove(instance.instanceId);
    await runtime.destroy?.();
  }
  await brain?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("agent protocol additions (real Brain, process runtime)", () => {
  let first: Agent;
  let hung = false;
  /** Calls held by the "hung engine"; they answer once it is back (as a resumed dockerd does). */
  const stuck: (() => void)[] = [];

  it("streams live stats of a running server with real figures", async () => {
    const config = agentConfig("proto-node", await joinToken());
    const real = defaultRuntime(config);
    // The real runtime, except that `list` can be made to hang like a stuck engine.
    const runtime = new Proxy(real, {
      get(target, property) {
        if (property === "list")
          return (...args: Parameters<Runtime["list"]>) =>
            hung
              ? new Promise((resolve) => stuck.push(() => resolve(target.list(...args))))
              : target.list(...args);
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    first = createAgent(config, {
      logger: quiet,
      runtime,
      statsIntervalMs: 200,
      runtimeCheckIntervalMs: 200,
      runtimeCheckTimeoutMs: 300,
    });
    agents.push(first);
    await first.start();
    const id = await running("stats-1");

    const controller = new AbortController();
    const response = await fetch(`${url}/api/v1/instances/${id}/stats`, {
      headers: { authorization: `Bearer ${token}` },
      signal: controller.signal,
    });
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    const samples: InstanceStatsSample[] = [];
    await waitFor("two stats samples", async () => {
      const { value } = await reader.read();
      text += decoder.decode(value, { stream: true });
      for (let cut = text.indexOf("\n\n"); cut >= 0; cut = text.indexOf("\n\n")) {
        const block = text.slice(0, cut);
        text = text.slice(cut + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (/^event: stats$/m.test(block) && data) samples.push(JSON.parse(data));
      }
      return samples.length >= 2;
    });
    controller.abort();
    const sample = samples.at(-1)!;
    expect(sample.instanceId).toBe(id);
    expect(sample.memoryBytes).toBeGreaterThan(0);
    expect(sample.cpu).toBeGreaterThanOrEqual(0);
    expect(sample.memoryLimitBytes).toBe(64 * 1024 * 1024); // the reservation
    expect(Date.parse(sample.at)).not.toBeNaN();
    // Samples keep coming (not one replayed): each is newer than the one before.
    expect(Date.parse(samples[1]!.at)).toBeGreaterThan(Date.parse(samples[0]!.at));
  });

  it("reports a runtime that stops answering; the Brain places nothing there until it answers", async () => {
    hung = true;
    const node = await waitFor("the node's runtime shown unavailable", async () => {
      const view = (await api("GET", `/nodes/${first.nodeId}`)).body;
      return view.unavailableRuntimes.length > 0 ? view : null;
    });
    expect(node.unavailableRuntimes[0]).toMatchObject({ kind: "process", available: false });
    expect(node.unavailableRuntimes[0].reason).toMatch(/did not answer|has not answered/);
    expect(node.status).toBe("ONLINE"); // the agent itself is fine and keeps syncing

    const created = await api("POST", "/instances", { template: "idle", name: "waits" });
    const pending = await waitFor("an explanation", async () => {
      const view = (await api("GET", `/instances/${created.body.id}`)).body;
      return view.pendingPlacement ? view : null;
    });
    expect(pending.state).toBe("REQUESTED");
    expect(pending.pendingPlacement.explanation.lines.join("\n")).toContain(
      "runtime process unavailable",
    );

    hung = false;
    for (const release of stuck.splice(0)) release();
    await waitFor(
      "the runtime available again",
      async () =>
        (await api("GET", `/nodes/${first.nodeId}`)).body.unavailableRuntimes.length === 0,
    );
    await waitFor(
      "the waiting instance RUNNING",
      async () => (await api("GET", `/instances/${created.body.id}`)).body.state === "RUNNING",
    );
  });

  it("a holder whose node was taken over meanwhile stops acting, then recovers once the node is free", async () => {
    // The Brain's session table (its own class is internal to brain-server).
    const sessions = brain.container.resolve<{
      begin(nodeId: string, sessionId: string): { accepted: boolean };
      end(nodeId: string, sessionId: string): void;
      release(nodeId: string, sessionId: string): void;
      holderOf(nodeId: string): string | null;
    }>(TOKENS.AgentSessions);
    const nodeId = first.nodeId!;
    const id = await running("demoted");
    // As if this agent had been paused past the window and another process had taken over.
    sessions.release(nodeId, first.sessionId);
    expect(sessions.begin(nodeId, "intruder-session-1").accepted).toBe(true);
    const audited = await waitFor("the refusal of the former holder", async () => {
      const audit = await api("GET", `/audit?action=node.identity-conflict&target=node:${nodeId}`);
      return audit.body.items.length > 0 ? audit.body.items : null;
    });
    expect(audited[0].details.refusedSession).toBe(first.sessionId.slice(0, 8));
    // A command meanwhile is not executed by the demoted process.
    expect((await api("POST", `/instances/${id}/stop`)).status).toBe(202);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await api("GET", `/instances/${id}`)).body.state).toBe("RUNNING");
    // The intruder goes away cleanly: the former holder claims the node again and serves it.
    sessions.end(nodeId, "intruder-session-1");
    sessions.release(nodeId, "intruder-session-1");
    await waitFor(
      "the stop executed after the node came back",
      async () => (await api("GET", `/instances/${id}`)).body.state === "STOPPED",
    );
    expect(sessions.holderOf(nodeId)).toBe(first.sessionId);
  });

  it("a second process with the same credential waits, executing nothing, until the first is gone", async () => {
    const errors: string[] = [];
    const second = createAgent(agentConfig("proto-node", null), {
      logger: { ...quiet, error: (_details, message) => errors.push(message) },
    });
    agents.push(second);
    const starting = second.start();
    await waitFor("the refusal logged", async () => errors.length > 0);
    expect(errors[0]).toMatch(/another agent process holds this node's credential/);
    // The first one keeps working for the node.
    const id = await running("still-served");
    const audit = await api("GET", "/audit?action=node.identity-conflict");
    expect(audit.body.items.length).toBeGreaterThanOrEqual(1);

    // The first one stops cleanly (releasing the node): the second takes over.
    await first.stop();
    await starting;
    expect(second.nodeId).toBe(first.nodeId);
    expect((await api("POST", `/instances/${id}/stop`)).status).toBe(202);
    await waitFor(
      "the stop executed by the second process",
      async () => (await api("GET", `/instances/${id}`)).body.state === "STOPPED",
    );
  });
});

describe("StatsSampler", () => {
  it("tells once that a runtime has no stats, and samples nothing for it", async () => {
    let woken = 0;
    const runtime = {
      capabilities: { supportsStats: false, supportsInput: false, supportsResourceLimits: false },
      stats: () => Promise.reject(new Error("must not be called")),
    } as unknown as Runtime;
    const sampler = new StatsSampler({ runtimeOf: () => runtime, onSamples: () => woken++ });
    sampler.setWatched(["inst_a"]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    await sampler.sample();
    expect(sampler.drain()).toEqual({ stats: [], unsupported: ["inst_a"] });
    await sampler.sample();
    expect(sampler.drain()).toEqual({ stats: [], unsupported: [] });
    expect(woken).toBe(1);
    sampler.close();
  });

  it("abandons a stats call that hangs and keeps one pending sample per instance", async () => {
    let calls = 0;
    const runtime = {
      capabilities: { supportsStats: true, supportsInput: false, supportsResourceLimits: false },
      stats: (id: string) => {
        calls += 1;
        if (id === "inst_hung") return new Promise(() => undefined);
        return Promise.resolve({ cpu: calls, memoryBytes: 1000, at: new Date() });
      },
    } as unknown as Runtime;
    const sampler = new StatsSampler({
      runtimeOf: () => runtime,
      onSamples: () => undefined,
      intervalMs: 60_000,
      timeoutMs: 50,
    });
    sampler.setWatched(["inst_ok", "inst_hung"]); // samples at once (a new viewer)
    await new Promise((resolve) => setTimeout(resolve, 150)); // past the 50 ms timeout
    await sampler.sample(); // a second round: the pending sample is replaced, not added
    const { stats } = sampler.drain();
    expect(stats.map((s) => s.instanceId)).toEqual(["inst_ok"]);
    expect(stats[0]).toMatchObject({ memoryBytes: 1000, networkRxBytes: null, diskBytes: null });
    sampler.setWatched([]);
    await sampler.sample();
    expect(sampler.drain().stats).toEqual([]);
    sampler.close();
  });
});

describe("claimAgentSession", () => {
  it("continues a dead predecessor's session on this boot, never a live one's", async () => {
    const folder = await mkdtemp(join(tmpdir(), "orch-session-"));
    try {
      const path = join(folder, "session.json");
      // First start: the fresh id, recorded.
      expect(await claimAgentSession(folder, "fresh-session-1")).toBe("fresh-session-1");
      expect(JSON.parse(await readFile(path, "utf8"))).toMatchObject({
        sessionId: "fresh-session-1",
        pid: process.pid,
      });
      // A second process of this same process (pid alive: ours): a new session.
      expect(await claimAgentSession(folder, "fresh-session-2")).toBe("fresh-session-2");
      const boot = JSON.parse(await readFile(path, "utf8")).bootId as string | null;
      // A predecessor that has exited, on this boot: its session goes on.
      const dead = spawnSync(process.execPath, ["-e", "process.pid"]).pid!;
      await writeFile(
        path,
        JSON.stringify({ sessionId: "crashed-session", pid: dead, bootId: boot }),
      );
      expect(await claimAgentSession(folder, "fresh-session-3")).toBe(
        boot === null ? "fresh-session-3" : "crashed-session",
      );
      // Another boot (a cloned machine): never continued.
      await writeFile(
        path,
        JSON.stringify({ sessionId: "cloned-session", pid: dead, bootId: "another-boot" }),
      );
      expect(await claimAgentSession(folder, "fresh-session-4")).toBe("fresh-session-4");
      // A live predecessor (the test's parent process stands in): never continued.
      await writeFile(
        path,
        JSON.stringify({ sessionId: "live-session", pid: process.ppid, bootId: boot }),
      );
      expect(await claimAgentSession(folder, "fresh-session-5")).toBe("fresh-session-5");
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
