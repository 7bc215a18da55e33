/**
 * The demo template's Docker flavour: the same `hello-http` layers run in the
 * locally built `orchestrator/node-app:1` image (scripts/services.sh) by an
 * agent with the Docker runtime.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Brain, buildBrain, loadBrainConfig } from "@orchestrator/brain-server";
import { guardPlugin, type TemplateStorage } from "@orchestrator/core";
import { publishTemplate } from "@orchestrator/core/cache";
import { testServiceEnv, testServiceSkipReason } from "@orchestrator/core/testing";
import { type Agent, createAgent, loadAgentConfig } from "@orchestrator/node-agent";
import { FolderTemplateStorage } from "@orchestrator/storage-fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_TEMPLATE_DIR } from "../src/embedded.js";

const skip = testServiceSkipReason("docker");
if (skip) console.warn(`[cli] demo on Docker: ${skip}`);

describe.skipIf(skip !== null)("hello-http on the Docker runtime", () => {
  let dir: string;
  let brain: Brain;
  let agent: Agent;
  let url: string;
  let token: string;

  const api = async (method: string, path: string, body?: unknown) => {
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
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "orch-demo-docker-"));
    const storage: TemplateStorage = guardPlugin(
      new FolderTemplateStorage({ root: join(dir, "templates") }),
    );
    const published = await publishTemplate(storage, DEMO_TEMPLATE_DIR);
    await storage.destroy?.();
    brain = await buildBrain(
      loadBrainConfig({
        env: {},
        overrides: {
          databaseUrl: "sqlite::memory:",
          adminPassword: "docker-demo-pass",
          port: 0,
          heartbeatIntervalMs: 1000,
          offlineAfterMs: 5000,
          syncWaitMs: 1000,
        },
      }),
      { logger: false },
    );
    await brain.ensureAdmin();
    brain.startLoops();
    url = await brain.listen();
    token = (
      (await fetch(`${url}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "admin", password: "docker-demo-pass" }),
      }).then((r) => r.json())) as { token: string }
    ).token;
    expect((await api("POST", "/templates", { definition: published.definition })).status).toBe(
      201,
    );
    const joinToken = (await api("POST", "/nodes/join-tokens", {})).body.secret as string;
    agent = createAgent(
      loadAgentConfig({
        ORCH_BRAIN_URL: url,
        ORCH_JOIN_TOKEN: joinToken,
        ORCH_DATA_DIR: join(dir, "agent"),
        ORCH_STORAGE_DIR: join(dir, "templates"),
        ORCH_RUNTIME: "docker",
        ORCH_ALLOWED_IMAGES: testServiceEnv("docker")!.ORCH_TEST_NODE_IMAGE!,
        ORCH_PORT_RANGE: "42000-42099",
      }),
      { logger: { info() {}, warn() {}, error() {} } },
    );
    await agent.start();
  });

  afterAll(async () => {
    await agent?.stop();
    await brain?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves the greeting from a container, then is destroyed", async () => {
    const greeting = `Hello from Docker ${randomBytes(3).toString("hex")}`;
    const created = await api("POST", "/instances", {
      template: "hello-http",
      name: "docked",
      variables: { GREETING: greeting },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const deadline = Date.now() + 30_000;
    let instance = created.body;
    while (instance.state !== "RUNNING" && Date.now() < deadline) {
      expect(instance.state).not.toBe("FAILED");
      await new Promise((r) => setTimeout(r, 100));
      instance = (await api("GET", `/instances/${id}`)).body;
    }
    expect(instance.state).toBe("RUNNING");
    const page = await fetch(`http://127.0.0.1:${instance.ports.http}/`).then((r) => r.text());
    expect(page).toContain(`<h1>${greeting}</h1>`);
    await api("DELETE", `/instances/${id}`);
    const until = Date.now() + 30_000;
    while (
      (await api("GET", `/instances/${id}`)).body.state !== "DESTROYED" &&
      Date.now() < until
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await api("GET", `/instances/${id}`)).body.state).toBe("DESTROYED");
  });
});
