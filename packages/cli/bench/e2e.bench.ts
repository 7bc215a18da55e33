/**
 * `e2e.create-to-running`: the whole platform as `orchestrator start` composes
 * it — a Brain (SQLite file, loops active, listening on loopback) and a Node
 * Agent (process runtime, folder template storage) joined through the API —
 * and the demo template (`hello-http`). Measured: ms from `POST
 * /api/v1/instances` until `GET /api/v1/instances/:id` says RUNNING (the
 * server printed its readiness line); the instance is destroyed between runs.
 * Baseline: starting the same server by hand — copy its two layers (`cp -a`),
 * `node server.mjs`, wait for "listening on".
 */
import { spawn } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { guardPlugin, type TemplateStorage } from "@orchestrator/core";
import { publishTemplate } from "@orchestrator/core/cache";
import { type Agent, createAgent, loadAgentConfig } from "@orchestrator/node-agent";
import { FolderTemplateStorage } from "@orchestrator/storage-fs";
import {
  type BenchModule,
  interleave,
  median,
  percentile,
  type ScenarioResult,
} from "../../../bench/lib.js";
import { type RunningBrain, startBrain } from "../../brain-server/bench/support.js";
import { DEMO_TEMPLATE_DIR } from "../src/embedded.js";

const ID = "e2e.create-to-running";
const TIMEOUT_MS = 30_000;

async function api(
  brain: RunningBrain,
  method: "GET" | "POST" | "DELETE",
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${brain.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${brain.token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {} };
}

async function until(
  brain: RunningBrain,
  id: string,
  done: (state: string | null) => boolean,
): Promise<string | null> {
  const deadline = performance.now() + TIMEOUT_MS;
  for (;;) {
    const got = await api(brain, "GET", `/api/v1/instances/${id}`);
    const state = got.status === 404 ? null : String(got.body.state);
    if (done(state)) return state;
    if (state === "FAILED") throw new Error(`instance ${id} FAILED: ${JSON.stringify(got.body)}`);
    if (performance.now() > deadline) throw new Error(`instance ${id} stuck in ${state}`);
    // Polling every 10 ms: the figure is at most that much late.
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** By hand: copy the layers, start the server, wait for its readiness line. */
async function byHand(dir: string, port: number): Promise<number> {
  const start = performance.now();
  await mkdir(dir, { recursive: true });
  await new Promise<void>((resolve, reject) => {
    const cp = spawn(
      "sh",
      [
        "-c",
        'cp -a "$1"/. "$3"/ && cp -a "$2"/. "$3"/',
        "sh",
        join(DEMO_TEMPLATE_DIR, "layers/base/node-app"),
        join(DEMO_TEMPLATE_DIR, "layers/hello-http"),
        dir,
      ],
      { stdio: "ignore" },
    );
    cp.on("error", reject);
    cp.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`cp exited ${code}`))));
  });
  const child = spawn(process.execPath, ["server.mjs"], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", PORT: String(port) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const ms = await new Promise<number>((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error("server never ready")), TIMEOUT_MS);
    child.stdout.on("data", (chunk: Buffer) => {
      seen += chunk.toString("utf8");
      if (seen.includes("listening on")) {
        clearTimeout(timer);
        resolve(performance.now() - start);
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  });
  child.removeAllListeners("exit");
  await new Promise((resolve) => {
    child.once("exit", resolve);
    child.kill("SIGTERM");
  });
  await rm(dir, { recursive: true, force: true });
  return ms;
}

const bench: BenchModule = {
  name: "e2e",
  scenarios: [ID],
  async run(context, selected) {
    if (!selected(ID)) return [];
    const root = context.tmpDir;
    const templatesDir = join(root, "templates");
    await mkdir(templatesDir, { recursive: true });
    // Real agents long-poll: an idle sync is parked until a command is queued.
    const brain = await startBrain(`sqlite:${join(root, "brain.db")}`, { syncWaitMs: 5_000 });
    let agent: Agent | null = null;
    try {
      const storage: TemplateStorage = guardPlugin(
        new FolderTemplateStorage({ root: templatesDir }),
      );
      const published = await publishTemplate(storage, DEMO_TEMPLATE_DIR);
      await storage.destroy?.();
      await brain.request("POST", "/api/v1/templates", { definition: published.definition });
      const joinToken = await brain.request("POST", "/api/v1/nodes/join-tokens", {});
      agent = createAgent(
        loadAgentConfig({
          PATH: process.env.PATH,
          ORCH_BRAIN_URL: brain.url,
          ORCH_DATA_DIR: join(root, "agent"),
          ORCH_STORAGE: "folder",
          ORCH_STORAGE_DIR: templatesDir,
          ORCH_RUNTIME: "process",
          ORCH_NODE_NAME: "bench",
          ORCH_PORT_RANGE: "41000-41099",
          ORCH_JOIN_TOKEN: String((joinToken as { secret: string }).secret),
        }),
        { logger: { info: () => undefined, warn: () => undefined, error: () => undefined } },
      );
      await agent.start();

      let counter = 0;
      const ours = async () => {
        counter += 1;
        const start = performance.now();
        const created = await api(brain, "POST", "/api/v1/instances", {
          template: published.name,
          name: `e2e-${counter}`,
        });
        if (created.status !== 201) throw new Error(`create: ${JSON.stringify(created.body)}`);
        const id = String(created.body.id);
        await until(brain, id, (state) => state === "RUNNING");
        const ms = performance.now() - start;
        // Not timed: destroy, so runs do not pile up servers on the node.
        await api(brain, "DELETE", `/api/v1/instances/${id}`);
        await until(brain, id, (state) => state === null || state === "DESTROYED");
        return ms;
      };
      let port = 41500;
      const baseline = () => byHand(join(root, `by-hand-${port}`), port++);
      const measured = await interleave(context.quick ? 3 : 15, ours, baseline, { warmup: 1 });
      const p50 = median(measured.ours);
      const overhead = p50 - median(measured.baseline);
      context.log(
        `${ID}: p50 ${p50.toFixed(0)} ms, by hand ${median(measured.baseline).toFixed(0)} ms`,
      );
      const result: ScenarioResult = {
        id: ID,
        name: "create the demo server through the API until RUNNING (Brain + agent + process runtime)",
        unit: "ms",
        better: "lower",
        runs: measured.ours,
        baseline: {
          name: "by hand: cp -a the layers, node server.mjs, wait for readiness",
          value: median(measured.baseline),
          runs: measured.baseline,
        },
        target: "platform overhead ≤ 1,000 ms over starting it by hand (p50)",
        met: overhead <= 1_000,
        extra: {
          p50Ms: Math.round(p50),
          p99Ms: Math.round(percentile(measured.ours, 99)),
          overheadMs: Math.round(overhead),
          byHandP99Ms: Math.round(percentile(measured.baseline, 99)),
          samples: measured.ours.length,
        },
      };
      return [result];
    } finally {
      await agent?.stop();
      await brain.close();
    }
  },
};

export default bench;
