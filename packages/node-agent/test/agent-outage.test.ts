/**
 * The Brain unreachable for longer than the offline timeout while the agent's
 * server exits: the agent journals the reports, and when the Brain is back they
 * are delivered once and in order; the node comes back ONLINE and the instance
 * ends in the state the node saw.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Brain, buildBrain, loadBrainConfig } from "@orchestrator/brain-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Agent, createAgent } from "../src/agent.js";
import { loadAgentConfig } from "../src/config/agent-config.js";

const quiet = { info() {}, warn() {}, error() {} };
let dir: string;
let brain: Brain;
let url: string;
let token: string;
let agent: Agent;
let brainReachable = true;

async function api(method: string, path: string, body?: unknown) {
  const response = await fetch(`${url}/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body ? { "content-type": "application/json" } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted field by field
  return { status: response.status, body: (await response.json()) as any };
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "orch-outage-"));
  await mkdir(join(dir, "storage", "layers", "brief"), { recursive: true });
  // Ready at once, exits cleanly a little later (while the Brain is away).
  await writeFile(
    join(dir, "storage", "layers", "brief", "server.sh"),
    "echo ready\nsleep 2\nexit 0\n",
  );
  const config = loadBrainConfig({
    env: {},
    overrides: {
      databaseUrl: "sqlite::memory:",
      adminPassword: "outage-admin-password",
      port: 0,
      heartbeatIntervalMs: 500,
      offlineAfterMs: 1500,
      syncWaitMs: 500,
    },
  });
  brain = await buildBrain(config, { logger: false });
  await brain.ensureAdmin();
  brain.startLoops();
  url = await brain.listen();
  const login = (await fetch(`${url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password: "outage-admin-password" }),
  }).then((r) => r.json())) as { token: string };
  token = login.token;
  await api("POST", "/templates", {
    definition: {
      name: "brief",
      layers: ["brief"],
      runtime: { process: { command: ["sh", "server.sh"] } },
      resources: { memoryMb: 32, cpu: 0.1, diskMb: 10 },
      readiness: { log: "ready", timeoutSeconds: 10 },
      restart: { policy: "never", maxRestarts: 0, windowSeconds: 60 },
    },
  });
  const joinToken = (await api("POST", "/nodes/join-tokens", {})).body.secret as string;
  // A network between agent and Brain that can be cut.
  const unreliableFetch: typeof fetch = (input, init) =>
    brainReachable
      ? fetch(input, init)
      : Promise.reject(new TypeError("fetch failed: network is down"));
  agent = createAgent(
    loadAgentConfig({
      ORCH_BRAIN_URL: url,
      ORCH_JOIN_TOKEN: joinToken,
      ORCH_DATA_DIR: join(dir, "agent"),
      ORCH_STORAGE_DIR: join(dir, "storage"),
    }),
    { logger: quiet, fetch: unreliableFetch },
  );
  await agent.start();
});

afterAll(async () => {
  await agent?.stop();
  await brain?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("Brain unreachable, then back", () => {
  it("delivers the reports made meanwhile once, in order; the node and instance recover", async () => {
    const created = await api("POST", "/instances", { template: "brief", name: "short-lived" });
    const id = created.body.id as string;
    await waitFor(
      "RUNNING",
      async () => (await api("GET", `/instances/${id}`)).body.state === "RUNNING",
    );

    brainReachable = false;
    const [node] = (await api("GET", "/nodes")).body.items as { id: string }[];
    await waitFor(
      "node OFFLINE",
      async () => (await api("GET", `/nodes/${node!.id}`)).body.status === "OFFLINE",
    );
    expect((await api("GET", `/instances/${id}`)).body.state).toBe("LOST");
    // The server exits by itself during the outage (a clean exit: STOPPED).
    await new Promise((r) => setTimeout(r, 2500));

    brainReachable = true;
    await waitFor(
      "node ONLINE",
      async () => (await api("GET", `/nodes/${node!.id}`)).body.status === "ONLINE",
    );
    await waitFor(
      "STOPPED",
      async () => (await api("GET", `/instances/${id}`)).body.state === "STOPPED",
    );
    const events = (await api("GET", `/instances/${id}/events`)).body.items as {
      to: string;
      seq: number;
    }[];
    expect(events.map((event) => event.to)).toEqual([
      "REQUESTED",
      "SCHEDULED",
      "PREPARING",
      "PREPARED",
      "STARTING",
      "RUNNING",
      "LOST",
      "STOPPED",
    ]);
    const seqs = events.map((event) => event.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });
});
