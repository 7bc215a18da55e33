/**
 * `scale.1k-instances-50-nodes`: 1,000 instances requested through the API (16
 * keep-alive clients in a separate process) on a Brain with 50 joined nodes,
 * scheduling loop active: seconds from the first request until every instance
 * is SCHEDULED (read back from the event log), with the Brain process's RSS.
 * Each run uses a fresh Brain on a SQLite file. Quick: 200 instances, 10 nodes.
 */
import { type BenchModule, median, type ScenarioResult } from "../../../bench/lib.js";
import { runLoad } from "../../../bench/load.js";
import { schedulingDelays, sideConnection, startBrain, untilAllScheduled } from "./support.js";

const ID = "scale.1k-instances-50-nodes";

/** A small game server: 256 MiB, a quarter core and one port, ~64 per node. */
const template = {
  name: "arena",
  layers: ["arena"],
  runtime: { process: { command: ["sh", "-c", "echo ready"] } },
  ports: [{ name: "game", protocol: "udp" }],
  resources: { memoryMb: 256, cpu: 0.25, diskMb: 512 },
  readiness: { log: "ready", timeoutSeconds: 30 },
};

async function once(
  tmpDir: string,
  run: number,
  instances: number,
  nodes: number,
): Promise<{ seconds: number; slowestMs: number; rssMiB: number; placed: number }> {
  const databaseUrl = `sqlite:${tmpDir}/scale-${run}.db`;
  const brain = await startBrain(databaseUrl);
  const side = await sideConnection(databaseUrl);
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 50);
  try {
    await brain.request("POST", "/api/v1/templates", { definition: template });
    for (let i = 0; i < nodes; i += 1)
      await brain.joinNode(
        `node-${i}`,
        { memoryMb: 16_384, cpu: 16, diskMb: 100_000 },
        { from: 30000, to: 30199 },
      );
    const since = Date.now();
    const start = performance.now();
    const load = await runLoad(tmpDir, {
      url: `${brain.url}/api/v1/instances`,
      method: "POST",
      headers: { authorization: `Bearer ${brain.token}` },
      body: JSON.stringify({ template: "arena", name: "match-__N__", variables: {} }),
      mode: "closed",
      concurrency: 16,
      total: instances,
      durationMs: 120_000,
    });
    if (load.errors > 0 || load.completed !== instances)
      throw new Error(`created ${load.completed - load.errors}/${instances}: ${load.firstError}`);
    await untilAllScheduled(side, 60_000);
    const seconds = (performance.now() - start) / 1000;
    const delays = await schedulingDelays(side, since);
    const placed = delays.filter((d) => d !== null).length;
    const slowestMs = Math.max(0, ...delays.map((d) => d ?? Number.POSITIVE_INFINITY));
    return { seconds, slowestMs, rssMiB: peakRss / 2 ** 20, placed };
  } finally {
    clearInterval(sampler);
    await brain.close();
    await side.close();
  }
}

const bench: BenchModule = {
  name: "brain-scale",
  scenarios: [ID],
  async run(context, selected) {
    if (!selected(ID)) return [];
    const instances = context.quick ? 200 : 1_000;
    const nodes = context.quick ? 10 : 50;
    const results = [];
    // The first (unmeasured) run warms the JIT and the SQLite code paths.
    if (!context.quick) await once(context.tmpDir, 0, instances, nodes);
    for (let run = 1; run <= (context.quick ? 1 : 3); run += 1)
      results.push(await once(context.tmpDir, run, instances, nodes));
    const slowest = Math.max(...results.map((r) => r.slowestMs));
    context.log(
      `${ID}: ${median(results.map((r) => r.seconds)).toFixed(2)} s, slowest wait ${slowest.toFixed(0)} ms`,
    );
    const result: ScenarioResult = {
      id: ID,
      name: `request ${instances.toLocaleString("en-US")} instances through the API onto ${nodes} nodes until all are SCHEDULED`,
      unit: "s",
      better: "lower",
      runs: results.map((r) => r.seconds),
      baseline: null,
      target: "every instance SCHEDULED within 1 s of its request (issue 8's bar)",
      met: results.every((r) => r.placed === instances) && slowest <= 1_000,
      extra: {
        instances,
        nodes,
        slowestRequestToScheduledMs: Number.isFinite(slowest) ? Math.round(slowest) : null,
        brainPeakRssMiB: Math.round(Math.max(...results.map((r) => r.rssMiB))),
        rssNote: "RSS of the process running the Brain (the bench runner shares it)",
      },
    };
    return [result];
  },
};

export default bench;
