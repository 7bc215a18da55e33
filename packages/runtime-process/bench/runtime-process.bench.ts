/**
 * `runtime.process.start`: how long from "run this server" to "it is
 * ready" through `ProcessRuntime` (create: state folder + stdin pipe; start:
 * log files, exit-status shim, detached spawn; readiness: the log line seen
 * through the log file follower), against a bare `child_process.spawn` of the
 * same command reading the same line from a pipe, interleaved in the same
 * run. The server is a POSIX sh script that prints `ready` and waits.
 * Target: our overhead ≤ 50 ms over the bare spawn (medians).
 */
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { waitUntilReady } from "@orchestrator/core";
import { type BenchModule, interleave, median, type ScenarioResult } from "../../../bench/lib.js";
import { ProcessRuntime } from "../src/index.js";

const ID = "runtime.process.start";
const SERVER = 'echo "booting"\necho "ready"\nwhile :; do sleep 60; done\n';
const TARGET_OVERHEAD_MS = 50;

/** Spawns the server bare and resolves once its stdout says `ready`; returns ms. */
async function bareStartToReady(cwd: string): Promise<number> {
  const started = performance.now();
  const child = spawn("sh", ["server.sh"], {
    cwd,
    stdio: ["ignore", "pipe", "ignore"],
    detached: true,
  });
  await new Promise<void>((resolve, reject) => {
    let text = "";
    child.once("error", reject);
    child.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (/^ready$/m.test(text)) resolve();
    });
  });
  const elapsed = performance.now() - started;
  process.kill(-child.pid!, "SIGKILL");
  await new Promise((resolve) => child.once("exit", resolve));
  return elapsed;
}

const module: BenchModule = {
  name: "runtime-process",
  scenarios: [ID],
  async run(context, selected): Promise<ScenarioResult[]> {
    if (!selected(ID)) return [];
    const instances = join(context.tmpDir, "instances");
    const workingDirectory = join(instances, "bench");
    await mkdir(workingDirectory, { recursive: true });
    await writeFile(join(workingDirectory, "server.sh"), SERVER);
    const runtime = new ProcessRuntime({
      stateDirectory: join(context.tmpDir, "state"),
      instanceRoots: [instances],
      cgroup: false,
    });
    await runtime.init();
    const createMs: number[] = [];
    const startToReadyMs: number[] = [];
    let next = 0;
    const ours = async () => {
      const instanceId = `bench-${next++}`;
      const began = performance.now();
      await runtime.create({
        instanceId,
        command: ["sh", "server.sh"],
        env: {},
        workingDirectory,
        ports: [],
        resources: { memoryMb: 64, cpu: 1, diskMb: 0 },
        labels: { bench: "1" },
        stop: { input: null, signal: "SIGTERM", timeoutSeconds: 1 },
      });
      const created = performance.now();
      await runtime.start(instanceId);
      await waitUntilReady(
        runtime,
        instanceId,
        { kind: "log", pattern: /^ready$/ },
        {
          timeoutMs: 10_000,
        },
      );
      const ready = performance.now();
      createMs.push(created - began);
      startToReadyMs.push(ready - created);
      await runtime.remove(instanceId);
      return ready - began;
    };
    try {
      const runs = context.quick ? 5 : 30;
      const result = await interleave(runs, ours, () => bareStartToReady(workingDirectory));
      const oursMedian = median(result.ours);
      const bareMedian = median(result.baseline);
      const overhead = oursMedian - bareMedian;
      context.log(
        `ours ${oursMedian.toFixed(1)} ms, bare spawn ${bareMedian.toFixed(1)} ms, overhead ${overhead.toFixed(1)} ms`,
      );
      return [
        {
          id: ID,
          name: "process runtime: create + start + ready by log line",
          unit: "ms",
          better: "lower",
          runs: result.ours,
          baseline: { name: "bare child_process.spawn", value: bareMedian, runs: result.baseline },
          target: `≤ bare spawn + ${TARGET_OVERHEAD_MS} ms`,
          met: overhead <= TARGET_OVERHEAD_MS,
          extra: {
            overheadMs: Number(overhead.toFixed(2)),
            createMedianMs: Number(median(createMs.slice(1)).toFixed(2)),
            startToReadyMedianMs: Number(median(startToReadyMs.slice(1)).toFixed(2)),
          },
        },
      ];
    } finally {
      await runtime.destroy();
    }
  },
};

export default module;
