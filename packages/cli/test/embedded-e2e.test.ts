/**
 * `orchestrator start` as a real process in a temporary folder: log in
 * through the API, run the demo template, fetch its page, stop/start/destroy
 * it, and restart the platform with its data.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/cli.js";

const BIN = resolve(import.meta.dirname, "../src/bin.ts");
const PASSWORD = "embedded-admin-password";
let dir: string;
let port: number;
let platform: ChildProcess | null = null;
let output = "";

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch((error: Error) => {
      if (error.message.startsWith("the platform exited")) throw error;
      return null;
    });
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}\n--- platform output ---\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startPlatform(): Promise<void> {
  // Runs the CLI from source, as `npm start` does.
  const tsx = import.meta.resolve("tsx");
  const child = spawn(
    process.execPath,
    ["--import", tsx, "--conditions=@orchestrator/source", BIN, "start"],
    {
      cwd: dir,
      env: {
        ...process.env,
        ORCH_PORT: String(port),
        ORCH_ADMIN_PASSWORD: PASSWORD,
        ORCH_DATA_DIR: join(dir, "data"),
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  platform = child;
  child.stdout!.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    output += chunk;
  });
  await waitFor(
    "the platform to listen",
    async () => {
      if (child.exitCode !== null)
        throw new Error(`the platform exited with ${child.exitCode}:\n${output}`);
      return output.includes("Orchestrator is running at");
    },
    45_000,
  );
}

async function stopPlatform(): Promise<number | null> {
  const child = platform;
  if (!child || child.exitCode !== null) return child?.exitCode ?? null;
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill("SIGINT");
  platform = null;
  return exited;
}

let cookie = "";
let csrf = "";
async function api(method: string, path: string, body?: unknown) {
  const response = await fetch(`http://127.0.0.1:${port}/api/v1${path}`, {
    method,
    headers: {
      cookie,
      "x-csrf-token": csrf,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function login() {
  const response = await fetch(`http://127.0.0.1:${port}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password: PASSWORD }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { token: string; csrfToken: string };
  cookie = `orch_session=${body.token}`;
  csrf = body.csrfToken;
}

const stateOf = async (id: string) => (await api("GET", `/instances/${id}`)).body;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "orch-embedded-"));
  port = await freePort();
  await startPlatform();
  await login();
});

afterAll(async () => {
  await stopPlatform();
  await rm(dir, { recursive: true, force: true });
});

describe("orchestrator start (embedded, one process)", () => {
  const greeting = `Hello ${randomBytes(4).toString("hex")}`;
  let id: string;

  it("seeds the demo template and joins the local node", async () => {
    const templates = await api("GET", "/templates");
    expect(templates.body.items.map((t: { name: string }) => t.name)).toContain("hello-http");
    await waitFor(
      "the local node",
      async () => (await api("GET", "/nodes")).body.items[0]?.status === "ONLINE",
    );
  });

  it("runs hello-http: RUNNING, and its page shows the greeting", async () => {
    const created = await api("POST", "/instances", {
      template: "hello-http",
      name: "demo",
      variables: { GREETING: greeting },
    });
    expect(created.status).toBe(201);
    id = created.body.id;
    const running = await waitFor("RUNNING", async () => {
      const instance = await stateOf(id);
      return instance.state === "RUNNING" ? instance : null;
    });
    const page = await fetch(`http://127.0.0.1:${running.ports.http}/`).then((r) => r.text());
    expect(page).toContain(`<h1>${greeting}</h1>`);
  });

  it("stops and starts it again", async () => {
    expect((await api("POST", `/instances/${id}/stop`)).status).toBe(202);
    await waitFor("STOPPED", async () => (await stateOf(id)).state === "STOPPED");
    expect((await api("POST", `/instances/${id}/start`)).status).toBe(202);
    await waitFor("RUNNING again", async () => (await stateOf(id)).state === "RUNNING");
  });

  it("keeps everything across a restart of the platform (the server keeps running)", async () => {
    const before = await stateOf(id);
    expect(await stopPlatform()).toBe(0);
    // The game server is not a child of the platform: still serving.
    const page = await fetch(`http://127.0.0.1:${before.ports.http}/`).then((r) => r.text());
    expect(page).toContain(greeting);
    output = "";
    await startPlatform();
    expect(output).not.toContain("created the user 'admin'");
    await login();
    await waitFor(
      "still RUNNING after the restart",
      async () => (await stateOf(id)).state === "RUNNING",
    );
    const events = (await api("GET", `/instances/${id}/events`)).body.items.map(
      (e: { to: string }) => e.to,
    );
    expect(events.filter((state: string) => state === "STARTING")).toHaveLength(2);
  });

  it("drives it from the CLI: login for a token, list instances", async () => {
    const env = { ORCH_URL: `http://127.0.0.1:${port}`, ORCH_PASSWORD: PASSWORD };
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: () => undefined, env };
    expect(await runCli(["login"], io)).toBe(0);
    const token = out.pop()!;
    expect(token).toMatch(/^orch_pat_/);
    expect(
      await runCli(["instance", "list", "--json"], { ...io, env: { ...env, ORCH_TOKEN: token } }),
    ).toBe(0);
    expect(JSON.parse(out.join("\n")).map((i: { id: string }) => i.id)).toContain(id);
  });

  it("destroys it: DESTROYED, its directory gone, events in order", async () => {
    expect((await api("DELETE", `/instances/${id}`)).status).toBe(202);
    await waitFor("DESTROYED", async () => (await stateOf(id)).state === "DESTROYED");
    await expect(stat(join(dir, "data", "agent", "instances", id))).rejects.toThrow(/ENOENT/);
    const events = (await api("GET", `/instances/${id}/events`)).body.items.map(
      (e: { to: string }) => e.to,
    );
    expect(events).toEqual([
      "REQUESTED",
      "SCHEDULED",
      "PREPARING",
      "PREPARED",
      "STARTING",
      "RUNNING",
      "STOPPING",
      "STOPPED",
      "STARTING",
      "RUNNING",
      "DESTROYING",
      "DESTROYED",
    ]);
  });
});
