/**
 * `runtime.docker.start`: how long from "run this server" to "it is
 * ready" through `DockerRuntime` (policy check, image check, create with the
 * full local policy, start, ready by log line through the demultiplexed log
 * follow), against `docker run` of the same image and command (attached, the
 * same line read from its output), interleaved in the same run. Needs the
 * Docker test service (`ORCH_TEST_DOCKER`, `ORCH_TEST_DOCKER_IMAGE`,); skipped without it.
 * Target: our overhead ≤ 50 ms over `docker run` (medians).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { waitUntilReady } from "@orchestrator/core";
import { testServiceEnv } from "@orchestrator/core/testing";
import Dockerode from "dockerode";
import { type BenchModule, interleave, median, type ScenarioResult } from "../../../bench/lib.js";
import { DockerRuntime } from "../src/index.js";

const ID = "runtime.docker.start";
const SERVER = 'echo "booting"\necho "ready"\nwhile :; do sleep 60; done\n';
const TARGET_OVERHEAD_MS = 50;

function client(url: string): Dockerode {
  if (url.startsWith("unix://")) return new Dockerode({ socketPath: url.slice("unix://".length) });
  const parsed = new URL(url.replace(/^tcp:/, "http:"));
  return new Dockerode({ host: parsed.hostname, port: Number(parsed.port) || 2375 });
}

/** `docker run` attached, resolved once the output says `ready`; returns ms. */
async function dockerRun(image: string, dir: string, name: string, env: NodeJS.ProcessEnv) {
  const started = performance.now();
  const child = spawn(
    "docker",
    [
      "run",
      "--rm",
      "--init",
      "--name",
      name,
      "-v",
      `${dir}:/data`,
      "-w",
      "/data",
      image,
      "sh",
      "server.sh",
    ],
    { stdio: ["ignore", "pipe", "ignore"], env },
  );
  await new Promise<void>((resolve, reject) => {
    let text = "";
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`docker run exited (${code}) before ready`)));
    child.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (/^ready$/m.test(text)) resolve();
    });
  });
  return { elapsed: performance.now() - started, child };
}

const module: BenchModule = {
  name: "runtime-docker",
  scenarios: [ID],
  async run(context, selected): Promise<ScenarioResult[]> {
    if (!selected(ID)) return [];
    const service = testServiceEnv("docker");
    const skipped = (reason: string): ScenarioResult[] => [
      {
        id: ID,
        name: "docker runtime: create + start + ready by log line",
        unit: "ms",
        better: "lower",
        runs: [],
        baseline: null,
        target: `≤ docker run + ${TARGET_OVERHEAD_MS} ms`,
        met: null,
        skipped: reason,
      },
    ];
    if (!service) return skipped("ORCH_TEST_DOCKER / ORCH_TEST_DOCKER_IMAGE not set");
    const image = service.ORCH_TEST_DOCKER_IMAGE!;
    const docker = client(service.ORCH_TEST_DOCKER!);
    const cliEnv = { ...process.env, DOCKER_HOST: service.ORCH_TEST_DOCKER };
    const instances = join(context.tmpDir, "instances");
    const workingDirectory = join(instances, "bench");
    await mkdir(workingDirectory, { recursive: true });
    await writeFile(join(workingDirectory, "server.sh"), SERVER);
    const run = randomBytes(3).toString("hex");
    const runtime = new DockerRuntime({
      docker,
      allowedImages: [image],
      instanceRoots: [instances],
      namespace: `bench-${run}`,
      pull: "never",
    });
    await runtime.init();
    let next = 0;
    const ours = async () => {
      const instanceId = `bench-${run}-${next++}`;
      const began = performance.now();
      await runtime.create({
        instanceId,
        image,
        command: ["sh", "server.sh"],
        env: {},
        workingDirectory,
        ports: [],
        resources: { memoryMb: 64, cpu: 1, diskMb: 0 },
        labels: { bench: "1" },
        stop: { input: null, signal: "SIGTERM", timeoutSeconds: 1 },
      });
      await runtime.start(instanceId);
      await waitUntilReady(
        runtime,
        instanceId,
        { kind: "log", pattern: /^ready$/ },
        {
          timeoutMs: 30_000,
        },
      );
      const elapsed = performance.now() - began;
      await runtime.remove(instanceId);
      return elapsed;
    };
    const baseline = async () => {
      const name = `orch-bench-base-${run}-${next++}`;
      const { elapsed, child } = await dockerRun(image, workingDirectory, name, cliEnv);
      child.removeAllListeners("exit");
      await docker.getContainer(name).remove({ force: true });
      await new Promise((resolve) =>
        child.exitCode === null ? child.once("exit", resolve) : resolve(null),
      );
      return elapsed;
    };
    try {
      const result = await interleave(context.quick ? 3 : 15, ours, baseline);
      const oursMedian = median(result.ours);
      const baseMedian = median(result.baseline);
      const overhead = oursMedian - baseMedian;
      context.log(
        `ours ${oursMedian.toFixed(1)} ms, docker run ${baseMedian.toFixed(1)} ms, overhead ${overhead.toFixed(1)} ms`,
      );
      return [
        {
          id: ID,
          name: "docker runtime: create + start + ready by log line",
          unit: "ms",
          better: "lower",
          runs: result.ours,
          baseline: {
            name: "docker run (CLI, attached)",
            value: baseMedian,
            runs: result.baseline,
          },
          target: `≤ docker run + ${TARGET_OVERHEAD_MS} ms`,
          met: overhead <= TARGET_OVERHEAD_MS,
          extra: { overheadMs: Number(overhead.toFixed(2)) },
        },
      ];
    } finally {
      for (const info of await runtime.list()) await runtime.remove(info.instanceId);
      await runtime.destroy();
    }
  },
};

export default module;
