/**
 * `npm run bench [-- --filter <text>] [--quick]`: runs every package's
 * benchmarks and writes bench/results/latest.json and latest.md.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { cpus, freemem, platform, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { BenchModule, ScenarioResult } from "./lib.js";
import { median } from "./lib.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const filterIndex = args.indexOf("--filter");
const filter = filterIndex >= 0 ? args[filterIndex + 1] : undefined;
const matches = (text: string) => !filter || text.includes(filter);

async function discover(): Promise<string[]> {
  const files: string[] = [];
  for (const pkg of await readdir("packages")) {
    const dir = join("packages", pkg, "bench");
    const entries = await readdir(dir).catch(() => [] as string[]);
    for (const entry of entries.sort())
      if (entry.endsWith(".bench.ts")) files.push(join(dir, entry));
  }
  return files;
}

interface ReportedScenario extends Omit<ScenarioResult, "baseline"> {
  value: number | null;
  min: number | null;
  max: number | null;
  baseline: { name: string; value: number } | null;
  ratio: number | null;
}

function report(result: ScenarioResult): ReportedScenario {
  const value = result.skipped || result.runs.length === 0 ? null : median(result.runs);
  const baseline = result.baseline
    ? { name: result.baseline.name, value: result.baseline.value }
    : null;
  return {
    ...result,
    value,
    min: value === null ? null : Math.min(...result.runs),
    max: value === null ? null : Math.max(...result.runs),
    baseline,
    ratio: value !== null && baseline && baseline.value !== 0 ? value / baseline.value : null,
    met: value === null ? null : result.met,
  };
}

const format = (n: number | null) =>
  n === null
    ? "–"
    : Math.abs(n) >= 100
      ? n.toFixed(0)
      : Math.abs(n) >= 1
        ? n.toFixed(2)
        : n.toPrecision(3);

function markdown(doc: {
  machine: Record<string, unknown>;
  node: string;
  startedAt: string;
  quick: boolean;
  scenarios: ReportedScenario[];
}): string {
  const lines = [
    "# Benchmark results",
    "",
    `Started ${doc.startedAt} on Node ${doc.node}${doc.quick ? " (quick mode: smaller sizes, not judged)" : ""}.`,
    "",
    `Machine: ${JSON.stringify(doc.machine)}`,
    "",
    "| id | scenario | median | min | max | unit | baseline | ratio | target | met |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const s of doc.scenarios) {
    const baseline = s.baseline ? `${s.baseline.name}: ${format(s.baseline.value)}` : "–";
    const met = s.skipped ? `skipped: ${s.skipped}` : s.met === null ? "–" : s.met ? "yes" : "NO";
    lines.push(
      `| ${s.id} | ${s.name} | ${format(s.value)} | ${format(s.min)} | ${format(s.max)} | ${s.unit} | ${baseline} | ${format(s.ratio)} | ${s.target} | ${met} |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

const startedAt = new Date().toISOString();
const scenarios: ReportedScenario[] = [];
for (const file of await discover()) {
  const module = (await import(pathToFileURL(file).href)).default as BenchModule;
  if (!matches(module.name) && !module.scenarios.some(matches)) continue;
  const tmpDir = await mkdtemp(join(tmpdir(), `orch-bench-${module.name}-`));
  console.log(`▶ ${module.name}${quick ? " (quick)" : ""}`);
  try {
    const selected = (id: string) => matches(module.name) || matches(id);
    const results = await module.run(
      { quick, tmpDir, log: (m) => console.log(`  ${m}`) },
      selected,
    );
    for (const result of results) {
      const reported = report(result);
      scenarios.push(reported);
      console.log(
        `  ${reported.id}: ${format(reported.value)} ${reported.unit}` +
          (reported.ratio === null
            ? ""
            : ` (ratio ${format(reported.ratio)} vs ${reported.baseline?.name})`) +
          (reported.skipped
            ? ` skipped: ${reported.skipped}`
            : reported.met === false
              ? " — target NOT met"
              : ""),
      );
    }
  } finally {
    await rm(tmpDir, { recursive: true, force: true });
  }
}

const doc = {
  machine: {
    platform: platform(),
    kernel: release(),
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    freeMemoryGiB: Math.round(freemem() / 2 ** 30),
  },
  node: process.versions.node,
  startedAt,
  quick,
  scenarios,
};
await mkdir("bench/results", { recursive: true });
await writeFile("bench/results/latest.json", `${JSON.stringify(doc, null, 2)}\n`);
await writeFile("bench/results/latest.md", markdown(doc));
console.log(`wrote bench/results/latest.json and latest.md (${scenarios.length} scenarios)`);
