/**
 * Turns scenario results into the report other tools read (`latest.json`), its
 * readable twin (`latest.md`) and the scheduler throughput chart (SVG).
 */
import type { ScenarioResult } from "./lib.js";
import { median } from "./lib.js";

export interface ReportedScenario extends Omit<ScenarioResult, "baseline"> {
  value: number | null;
  min: number | null;
  max: number | null;
  baseline: { name: string; value: number } | null;
  /** value / baseline, whatever the direction (the contract's figure). */
  ratio: number | null;
  /**
   * How many times better ours is than the baseline, direction applied
   * (> 1: ours better; for `better: "lower"` it is baseline / value).
   */
  advantage: number | null;
  /** `advantage` in words, e.g. "1.6× faster" or "1.2× slower". */
  vsBaseline: string | null;
}

export interface ReportDocument {
  machine: Record<string, unknown>;
  node: string;
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  filter: string | null;
  scenarios: ReportedScenario[];
}

/** Units that measure time or a rate, for which "faster"/"slower" reads right. */
const SPEED_UNIT = /(^|\/)(s|ms|µs|us|ns)$|\/s$/;

export function describeAdvantage(advantage: number, unit: string): string {
  const speed = SPEED_UNIT.test(unit);
  if (Math.abs(advantage - 1) < 0.005) return speed ? "as fast" : "equal";
  const factor = advantage >= 1 ? advantage : 1 / advantage;
  const word = advantage >= 1 ? (speed ? "faster" : "better") : speed ? "slower" : "worse";
  const digits = factor >= 100 ? 0 : factor >= 10 ? 1 : 2;
  return `${factor.toFixed(digits)}× ${word}`;
}

export function report(result: ScenarioResult): ReportedScenario {
  const runs = result.runs.filter((run) => Number.isFinite(run));
  const value = result.skipped || runs.length === 0 ? null : median(runs);
  const baseline =
    result.baseline && Number.isFinite(result.baseline.value)
      ? { name: result.baseline.name, value: result.baseline.value }
      : null;
  const ratio = value !== null && baseline && baseline.value !== 0 ? value / baseline.value : null;
  const advantage =
    ratio === null || ratio === 0 ? null : result.better === "higher" ? ratio : 1 / ratio;
  return {
    ...result,
    ...(value === null && !result.skipped ? { skipped: "produced no measurement" } : {}),
    value,
    min: value === null ? null : Math.min(...runs),
    max: value === null ? null : Math.max(...runs),
    baseline,
    ratio,
    advantage,
    vsBaseline: advantage === null ? null : describeAdvantage(advantage, result.unit),
    met: value === null ? null : result.met,
  };
}

export const format = (n: number | null): string =>
  n === null
    ? "–"
    : Math.abs(n) >= 100
      ? n.toFixed(0)
      : Math.abs(n) >= 1
        ? n.toFixed(2)
        : n === 0
          ? "0"
          : n.toPrecision(3);

const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");

export function markdown(doc: ReportDocument, chartFile: string | null): string {
  const machine = doc.machine;
  const met = doc.scenarios.filter((s) => s.met === true).length;
  const missed = doc.scenarios.filter((s) => s.met === false).length;
  const skipped = doc.scenarios.filter((s) => s.skipped).length;
  const lines = [
    "# Benchmark results",
    "",
    `Started ${doc.startedAt}, finished ${doc.finishedAt}, Node ${doc.node}` +
      (doc.quick ? " — **quick mode** (smaller sizes; not judged)" : "") +
      (doc.filter ? ` — filtered by \`${doc.filter}\`` : "") +
      ".",
    "",
    `Machine: ${machine.cpu} × ${machine.cores} cores, ${machine.memoryGiB} GiB RAM ` +
      `(${machine.freeMemoryGiB} GiB free at start), ${machine.platform} ${machine.kernel}; ` +
      `load average at start ${JSON.stringify(machine.loadAverageAtStart)}, at end ${JSON.stringify(machine.loadAverageAtEnd)}` +
      (machine.commit ? `; commit ${machine.commit}` : "") +
      ".",
    "",
    `${doc.scenarios.length} scenarios: ${met} met their target, ${missed} did not, ${skipped} skipped.`,
    "",
    "Values are medians over repeated runs (min and max beside them). *vs baseline* applies",
    "each scenario's direction (*better*: higher or lower), so “faster”/“better” always means ours wins.",
    "",
    "| id | scenario | median | min | max | unit | better | baseline | ratio | vs baseline | target | met |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const s of doc.scenarios) {
    const baseline = s.baseline ? `${s.baseline.name}: ${format(s.baseline.value)}` : "–";
    const status = s.skipped
      ? `skipped: ${s.skipped}`
      : s.met === null
        ? "–"
        : s.met
          ? "yes"
          : "**NO**";
    lines.push(
      `| ${[
        s.id,
        s.name,
        format(s.value),
        format(s.min),
        format(s.max),
        s.unit,
        s.better,
        baseline,
        format(s.ratio),
        s.vsBaseline ?? "–",
        s.target,
        status,
      ]
        .map((text) => cell(String(text)))
        .join(" | ")} |`,
    );
  }
  if (chartFile) {
    lines.push(
      "",
      "## Scheduler throughput vs node count",
      "",
      `![scheduler placements/s vs nodes](${chartFile})`,
    );
  }
  const extras = doc.scenarios.filter((s) => s.extra && Object.keys(s.extra).length > 0);
  if (extras.length > 0) {
    lines.push("", "## Extra figures", "");
    for (const s of extras) lines.push(`- \`${s.id}\`: \`${JSON.stringify(s.extra)}\``);
  }
  return `${lines.join("\n")}\n`;
}

export interface CurvePoint {
  nodes: number;
  ours: number;
  baseline: number | null;
}

/**
 * The scheduler's placements/s per node count: from `scheduler.place.*` (their
 * `extra.nodes`), falling back to `extra.curve` of the largest one.
 */
export function schedulerCurve(scenarios: readonly ReportedScenario[]): CurvePoint[] {
  const points = new Map<number, CurvePoint>();
  for (const s of scenarios) {
    if (!s.id.startsWith("scheduler.place.") || s.value === null) continue;
    const curve = s.extra?.curve;
    if (Array.isArray(curve)) {
      for (const entry of curve as Array<Record<string, unknown>>) {
        const nodes = entry.nodes;
        const ours = entry.placementsPerSecond;
        const naive = entry.naivePerSecond;
        if (typeof nodes === "number" && typeof ours === "number" && !points.has(nodes))
          points.set(nodes, { nodes, ours, baseline: typeof naive === "number" ? naive : null });
      }
    }
    const nodes = s.extra?.nodes;
    if (typeof nodes === "number")
      points.set(nodes, { nodes, ours: s.value, baseline: s.baseline?.value ?? null });
  }
  return [...points.values()].sort((a, b) => a.nodes - b.nodes);
}

/** A log-log line chart, self-contained SVG (no fonts or scripts to load). */
export function curveSvg(points: readonly CurvePoint[]): string | null {
  if (points.length < 2) return null;
  const width = 640;
  const height = 400;
  const margin = { left: 80, right: 24, top: 40, bottom: 56 };
  const values = points.flatMap((p) => (p.baseline === null ? [p.ours] : [p.ours, p.baseline]));
  const logX = (n: number) => Math.log10(n);
  const xMin = Math.floor(logX(points[0]!.nodes));
  const xMax = Math.ceil(logX(points.at(-1)!.nodes));
  const yMin = Math.floor(Math.log10(Math.max(1, Math.min(...values))));
  const yMax = Math.ceil(Math.log10(Math.max(...values)));
  const x = (n: number) =>
    margin.left +
    ((logX(n) - xMin) / Math.max(1, xMax - xMin)) * (width - margin.left - margin.right);
  const y = (v: number) =>
    height -
    margin.bottom -
    ((Math.log10(Math.max(1, v)) - yMin) / Math.max(1, yMax - yMin)) *
      (height - margin.top - margin.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">Scheduler: single placements/s vs node count (log-log)</text>`,
  ];
  for (let e = xMin; e <= xMax; e += 1) {
    const px = x(10 ** e);
    parts.push(
      `<line x1="${px}" y1="${margin.top}" x2="${px}" y2="${height - margin.bottom}" stroke="#ddd"/>`,
      `<text x="${px}" y="${height - margin.bottom + 18}" text-anchor="middle">${(10 ** e).toLocaleString("en-US")}</text>`,
    );
  }
  for (let e = yMin; e <= yMax; e += 1) {
    const py = y(10 ** e);
    parts.push(
      `<line x1="${margin.left}" y1="${py}" x2="${width - margin.right}" y2="${py}" stroke="#ddd"/>`,
      `<text x="${margin.left - 8}" y="${py + 4}" text-anchor="end">${(10 ** e).toLocaleString("en-US")}</text>`,
    );
  }
  parts.push(
    `<text x="${width / 2}" y="${height - 14}" text-anchor="middle">nodes</text>`,
    `<text x="18" y="${height / 2}" text-anchor="middle" transform="rotate(-90 18 ${height / 2})">placements/s</text>`,
  );
  const series = (
    pick: (p: CurvePoint) => number | null,
    color: string,
    label: string,
    row: number,
  ) => {
    const kept = points.filter((p) => pick(p) !== null);
    if (kept.length === 0) return;
    const path = kept.map((p) => `${x(p.nodes).toFixed(1)},${y(pick(p)!).toFixed(1)}`).join(" ");
    parts.push(`<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of kept) {
      const px = x(p.nodes).toFixed(1);
      const py = y(pick(p)!).toFixed(1);
      parts.push(
        `<circle cx="${px}" cy="${py}" r="3.5" fill="${color}"><title>${p.nodes} nodes: ${Math.round(pick(p)!)} /s</title></circle>`,
      );
    }
    const ly = margin.top + 6 + row * 18;
    parts.push(
      `<line x1="${width - 230}" y1="${ly}" x2="${width - 206}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${width - 200}" y="${ly + 4}">${label}</text>`,
    );
  };
  series((p) => p.ours, "#1f6feb", "scheduler (full pipeline)", 0);
  series((p) => p.baseline, "#d1242f", "naive linear scan (baseline)", 1);
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
