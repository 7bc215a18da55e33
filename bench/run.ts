/**
 * `npm run bench [-- --filter <text>] [--quick]`: runs every package's
 * benchmarks and writes the report into bench/results/:
 *
 * - full run: `latest.json`, `latest.md` (+ `scheduler-throughput.svg`);
 * - `--quick`: `latest-quick.*`; `--filter x`: `latest-x.*` (and
 *   `latest-quick-x.*`), so a partial or quick run never clobbers the full report.
 */
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { cpus, freemem, loadavg, platform, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadTestServicesEnv } from "@orchestrator/core/testing";
import type { BenchModule, ScenarioResult } from "./lib.js";
import {
  curveSvg,
  format,
  markdown,
  type ReportDocument,
  type ReportedScenario,
  report,
  schedulerCurve,
} from "./report.js";

// `scripts/services.sh up` writes the services' variables to .services.env.
loadTestServicesEnv();

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const filterIndex = args.indexOf("--filter");
const filter = filterIndex >= 0 ? args[filterIndex + 1] : undefined;
if (filterIndex >= 0 && (!filter || filter.startsWith("--"))) {
  console.error("usage: npm run bench -- [--quick] [--filter <text>]");
  process.exit(2);
}
const matches = (text: string) => !filter || text.includes(filter);

async function discover(): Promise<string[]> {
  const files: string[] = [];
  for (const pkg of (await readdir("packages")).sort()) {
    const dir = join("packages", pkg, "bench");
    const entries = await readdir(dir).catch(() => [] as string[]);
    for (const entry of entries.sort())
      if (entry.endsWith(".bench.ts")) files.push(join(dir, entry));
  }
  return files;
}

function commit(): string | null {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    return null;
  }
}

const loadAverage = () => loadavg().map((n) => Number(n.toFixed(2)));

const machine: Record<string, unknown> = {
  platform: platform(),
  kernel: release(),
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  freeMemoryGiB: Math.round(freemem() / 2 ** 30),
  loadAverageAtStart: loadAverage(),
  commit: commit(),
};

/** Declared but not returned (or the module threw): still reported, as skipped. */
function missing(id: string, reason: string): ScenarioResult {
  return {
    id,
    name: id,
    unit: "",
    better: "higher",
    runs: [],
    baseline: null,
    target: "–",
    met: null,
    skipped: reason,
  };
}

const startedAt = new Date().toISOString();
const started = performance.now();
const scenarios: ReportedScenario[] = [];
let failures = 0;
for (const file of await discover()) {
  const module = (await import(pathToFileURL(file).href)).default as BenchModule;
  if (!matches(module.name) && !module.scenarios.some(matches)) continue;
  const tmpDir = await mkdtemp(join(tmpdir(), `orch-bench-${module.name}-`));
  const moduleStart = performance.now();
  console.log(`▶ ${module.name}${quick ? " (quick)" : ""}`);
  const selected = (id: string) => matches(module.name) || matches(id);
  let results: ScenarioResult[] = [];
  try {
    results = await module.run({ quick, tmpDir, log: (m) => console.log(`  ${m}`) }, selected);
  } catch (error) {
    // One broken module must not hide the others' figures: its scenarios are
    // reported as skipped with the error, and the run exits non-zero at the end.
    failures += 1;
    console.error(`  ${module.name} failed:`, error);
    results = module.scenarios
      .filter(selected)
      .map((id) => missing(id, `module failed: ${(error as Error).message ?? String(error)}`));
  } finally {
    await rm(tmpDir, { recursive: true, force: true });
  }
  const returned = new Set(results.map((r) => r.id));
  for (const id of module.scenarios)
    if (selected(id) && !returned.has(id)) results.push(missing(id, "not produced by its module"));
  for (const result of results) {
    const reported = report(result);
    scenarios.push(reported);
    console.log(
      `  ${reported.id}: ${format(reported.value)} ${reported.unit}` +
        (reported.vsBaseline === null
          ? ""
          : ` (${reported.vsBaseline} than ${reported.baseline?.name}, ratio ${format(reported.ratio)})`) +
        (reported.skipped
          ? ` skipped: ${reported.skipped}`
          : reported.met === false
            ? " — target NOT met"
            : ""),
    );
  }
  console.log(`  (${((performance.now() - moduleStart) / 1000).toFixed(1)} s)`);
}

machine.loadAverageAtEnd = loadAverage();
const doc: ReportDocument = {
  machine,
  node: process.versions.node,
  startedAt,
  finishedAt: new Date().toISOString(),
  quick,
  filter: filter ?? null,
  scenarios,
};
const slug = [quick ? "quick" : null, filter ? filter.replace(/[^A-Za-z0-9._-]+/g, "_") : null]
  .filter(Boolean)
  .join("-");
const base = slug ? `latest-${slug}` : "latest";
await mkdir("bench/results", { recursive: true });
const svg = curveSvg(schedulerCurve(scenarios));
const chartFile = svg ? `scheduler-throughput${slug ? `-${slug}` : ""}.svg` : null;
if (svg && chartFile) await writeFile(join("bench/results", chartFile), svg);
await writeFile(join("bench/results", `${base}.json`), `${JSON.stringify(doc, null, 2)}\n`);
await writeFile(join("bench/results", `${base}.md`), markdown(doc, chartFile));
console.log(
  `wrote bench/results/${base}.json and ${base}.md${chartFile ? ` and ${chartFile}` : ""} ` +
    `(${scenarios.length} scenarios in ${((performance.now() - started) / 1000).toFixed(0)} s)`,
);
if (failures > 0) process.exitCode = 1;
