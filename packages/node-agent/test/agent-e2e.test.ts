// biome-ignore-all lint/suspicious/noTemplateCurlyInString: templates hold literal ${VARIABLE} placeholders
/**
 * The agent against a real Brain (HTTP on loopback, SQLite in memory) with the
 * process runtime and folder storage: join → sync → prepare → start → RUNNING →
 * input → stop → start → agent restart (server keeps running) → destroy.
 */

import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Brain, buildBrain, loadBrainConfig } from "@orchestrator/brain-server";
import { publishLayer } from "@orchestrator/core/cache";
import { testServiceEnv, testServiceSkipReason } from "@orchestrator/core/testing";
import { S3TemplateStorage } from "@orchestrator/storage-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Agent, createAgent } from "../src/agent.js";
import { loadAgentConfig } from "../src/config/agent-config.js";

const quiet = { info() {}, warn() {}, error() {} };

interface Setup {
  name: string;
  skip: string | null;
  /** Agent variables for the runtime and storage. */
  env(dir: string): Record<string, string>;
  /** Puts the layer folder where the agent's storage reads it. */
  publish(layerDir: string): Promise<void>;
}

const s3Env = testServiceEnv("s3");
const dockerEnv = testServiceEnv("docker");
const s3Prefix = `agent-e2e-${randomBytes(4).toString("hex")}/`;
const SETUPS: Setup[] = [
  {
    name: "process runtime + folder storage",
    skip: null,
    env: (dir) => ({
      ORCH_RUNTIME: "process",
      ORCH_STORAGE: "folder",
      ORCH_STORAGE_DIR: join(dir, "storage"),
    }),
    publish: async () => undefined, // the layer is written straight into the storage folder
  },
  {
    name: "docker runtime + S3 storage",
    skip: testServiceSkipReason("docker") ?? testServiceSkipReason("s3"),
    env: () => ({
      ORCH_RUNTIME: "docker",
      ORCH_ALLOWED_IMAGES: dockerEnv!.ORCH_TEST_DOCKER_IMAGE!,
      ORCH_STORAGE: "s3",
      ORCH_S3_ENDPOINT: s3Env!.ORCH_TEST_S3_ENDPOINT!,
      ORCH_S3_BUCKET: s3Env!.ORCH_TEST_S3_BUCKET!,
      ORCH_S3_PREFIX: s3Prefix,
      ORCH_S3_REGION: s3Env!.ORCH_TEST_S3_REGION!,
      ORCH_S3_FORCE_PATH_STYLE: "true",
      ORCH_S3_ACCESS_KEY_ID: s3Env!.ORCH_TEST_S3_ACCESS_KEY!,
      ORCH_S3_SECRET_ACCESS_KEY: s3Env!.ORCH_TEST_S3_SECRET_KEY!,
    }),
    async publish(layerDir) {
      const storage = new S3TemplateStorage({
        bucket: s3Env!.ORCH_TEST_S3_BUCKET!,
        prefix: s3Prefix,
        endpoint: s3Env!.ORCH_TEST_S3_ENDPOINT!,
        region: s3Env!.ORCH_TEST_S3_REGION!,
        forcePathStyle: true,
        credentials: {
          accessKeyId: s3Env!.ORCH_TEST_S3_ACCESS_KEY!,
          secretAccessKey: s3Env!.ORCH_TEST_S3_SECRET_KEY!,
        },
      });
      await storage.init?.();
      await publishLayer(storage, layerDir, "echo");
      await storage.destroy?.();
    },
  },
];
for (const setup of SETUPS)
  if (setup.skip) console.warn(`[node-agent] ${setup.name}: ${setup.skip}`);

describe.each(SETUPS)("node agent end to end: $name", (setup) => {
  let brain: Brain;
  let url: string;
  let token: string;
  let dir: string;
  let agent: Agent | null = null;

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
    timeoutMs = 20_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  const stateOf = async (id: string) =>
    (await api("GET", `/instances/${id}`)).body as {
      state: string;
      ports: Record<string, number>;
      failure: unknown;
    };

  function agentConfig(joinToken: string | null) {
    return loadAgentConfig({
      ...setup.env(dir),
      ORCH_BRAIN_URL: url,
      ...(joinToken ? { ORCH_JOIN_TOKEN: joinToken } : {}),
      ORCH_DATA_DIR: join(dir, "agent"),
      ORCH_NODE_NAME: "e2e-node",
      ORCH_PORT_RANGE: "41000-41099",
      ORCH_CAPACITY_MEMORY_MB: "2048",
    });
  }

  beforeAll(async () => {
    if (setup.skip) return;
    dir = await mkdtemp(join(tmpdir(), "orch-agent-e2e-"));
    const layer = join(dir, "storage", "layers", "echo");
    await mkdir(layer, { recursive: true });
    await writeFile(
      join(layer, "server.sh"),
      [
        'echo "greeting: $GREETING"',
        'echo "motd: $(cat motd.txt)"',
        'echo "ready on $PORT"',
        "trap 'echo bye; exit 0' TERM",
        'while read line; do echo "got: $line"; done',
        "",
      ].join("\n"),
    );
    await writeFile(join(layer, "motd.txt"), "Welcome to ${INSTANCE_NAME}\n");
    await setup.publish(layer);
    const config = loadBrainConfig({
      env: {},
      overrides: {
        databaseUrl: "sqlite::memory:",
        adminPassword: "an-admin-password",
        port: 0,
        heartbeatIntervalMs: 1000,
        offlineAfterMs: 5000,
        syncWaitMs: 1000,
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
    }).then((r) => r.json() as Promise<{ token: string; csrfToken: string; secret: string }>);
    token = login.token;
    const created = await fetch(`${url}/api/v1/tokens`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        cookie: `orch_session=${login.token}`,
        "x-csrf-token": login.csrfToken,
      },
      body: JSON.stringify({ name: "e2e" }),
    }).then((r) => r.json() as Promise<{ token: string; csrfToken: string; secret: string }>);
    token = created.secret;
    const template = await api("POST", "/templates", {
      definition: {
        name: "echo",
        layers: ["echo"],
        variables: { GREETING: { type: "string", default: "hello" } },
        files: { substitute: ["*.txt"] },
        runtime: {
          process: { command: ["sh", "server.sh"] },
          ...(dockerEnv
            ? { docker: { image: dockerEnv.ORCH_TEST_DOCKER_IMAGE!, command: ["sh", "server.sh"] } }
            : {}),
        },
        env: { GREETING: "${GREETING}", PORT: "${PORT}" },
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
    if (setup.skip) return;
    await agent?.stop();
    agent = null;
    await brain?.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe.skipIf(setup.skip !== null)("lifecycle", () => {
    let id: string;

    it("joins with a one-time token and stores its credential 0600", async () => {
      const joinToken = (await api("POST", "/nodes/join-tokens", {})).body.secret as string;
      agent = createAgent(agentConfig(joinToken), { logger: quiet });
      await agent.start();
      expect(agent.nodeId).toMatch(/^node_/);
      expect((await stat(join(dir, "agent", "credential.json"))).mode & 0o777).toBe(0o600);
      const nodes = await waitFor("node online", async () => {
        const listed = (await api("GET", "/nodes")).body.items as {
          status: string;
          capacity: { memoryMb: number };
        }[];
        return listed.length === 1 && listed[0]!.status === "ONLINE" ? listed : null;
      });
      expect(nodes[0]!.capacity.memoryMb).toBe(2048);
    });

    it("prepares and starts an instance until RUNNING (ready by log line)", async () => {
      const created = await api("POST", "/instances", {
        template: "echo",
        name: "alpha",
        variables: { GREETING: "howdy" },
      });
      expect(created.status).toBe(201);
      id = created.body.id;
      const running = await waitFor("RUNNING", async () => {
        const instance = await stateOf(id);
        return instance.state === "RUNNING" ? instance : null;
      });
      expect(running.ports.game).toBeGreaterThanOrEqual(41000);
      const motd = await readFile(join(dir, "agent", "instances", id, "motd.txt"), "utf8");
      expect(motd).toBe("Welcome to alpha\n");
      const events = (await api("GET", `/instances/${id}/events`)).body.items.map(
        (event: { to: string }) => event.to,
      );
      expect(events).toEqual([
        "REQUESTED",
        "SCHEDULED",
        "PREPARING",
        "PREPARED",
        "STARTING",
        "RUNNING",
      ]);
    });

    it("forwards console input and streams logs to a watcher", async () => {
      const controller = new AbortController();
      const response = await fetch(`${url}/api/v1/instances/${id}/logs`, {
        headers: { authorization: `Bearer ${token}` },
        signal: controller.signal,
      });
      const reader = response.body!.getReader();
      let text = "";
      const decoder = new TextDecoder();
      expect((await api("POST", `/instances/${id}/input`, { line: "say hi" })).status).toBe(202);
      await waitFor("echoed input in the log stream", async () => {
        const { value } = await reader.read();
        text += decoder.decode(value);
        return text.includes("got: say hi");
      });
      expect(text).toContain("greeting: howdy");
      controller.abort();
    });

    it("stops and starts again", async () => {
      expect((await api("POST", `/instances/${id}/stop`)).status).toBe(202);
      await waitFor("STOPPED", async () => (await stateOf(id)).state === "STOPPED");
      expect((await api("POST", `/instances/${id}/start`)).status).toBe(202);
      await waitFor("RUNNING again", async () => (await stateOf(id)).state === "RUNNING");
    });

    it("keeps the server running across an agent restart (same process, re-attached)", async () => {
      const pidFile = await readFile(join(dir, "agent", "runtime", id, "pid"), "utf8").catch(
        () => null,
      );
      await agent!.stop();
      agent = createAgent(agentConfig(null), { logger: quiet });
      await agent.start();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect((await stateOf(id)).state).toBe("RUNNING");
      if (pidFile !== null)
        expect(await readFile(join(dir, "agent", "runtime", id, "pid"), "utf8")).toBe(pidFile);
      const events = (await api("GET", `/instances/${id}/events`)).body.items.map(
        (event: { to: string }) => event.to,
      );
      expect(events.filter((state: string) => state === "STARTING")).toHaveLength(2); // no restart by the agent
    });

    it("destroys the instance and leaves nothing behind", async () => {
      expect((await api("DELETE", `/instances/${id}`)).status).toBe(202);
      await waitFor("DESTROYED", async () => (await stateOf(id)).state === "DESTROYED");
      await expect(stat(join(dir, "agent", "instances", id))).rejects.toThrow();
      const node = (await api("GET", "/nodes")).body.items[0];
      expect(node.allocated).toEqual({ memoryMb: 0, cpu: 0, diskMb: 0 });
    });
  });
});
