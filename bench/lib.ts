/**
 * The benchmark contract: each package contributes `packages/<name>/bench/*.bench.ts`
 * files whose default export is a `BenchModule`. A scenario compares itself with
 * a baseline measured in the same run (ratios, never absolute timers).
 */
import { performance } from "node:perf_hooks";

export interface BenchContext {
  /** Smaller sizes and fewer runs (what CI executes; results not judged there). */
  quick: boolean;
  /** A fresh scratch directory for this module, removed afterwards. */
  tmpDir: string;
  log(message: string): void;
}

export interface ScenarioResult {
  /** Stable id, e.g. `scheduler.place.1k`. */
  id: string;
  name: string;
  unit: string;
  better: "higher" | "lower";
  /** One value per repeated run; `value` is their median. */
  runs: number[];
  baseline: { name: string; value: number; runs?: number[] } | null;
  /** The target in words, e.g. "≥ 50,000/s" or "≤ 0.8× cp -a". */
  target: string;
  /** Whether the target is met; null when it has none or cannot judge. */
  met: boolean | null;
  /** Set when the scenario could not run (e.g. no MariaDB): value is then null. */
  skipped?: string;
  /** Extra figures worth keeping (requests made, bytes moved, ...). */
  extra?: Record<string, unknown>;
}

export interface BenchModule {
  /** Module name, matched by `--filter` (as are scenario ids). */
  name: string;
  /** The scenario ids this module produces (so `--filter` can skip whole modules). */
  scenarios: readonly string[];
  run(context: BenchContext, selected: (id: string) => boolean): Promise<ScenarioResult[]>;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

/** Milliseconds taken by `fn`. */
export async function timeMs(fn: () => unknown): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

export interface InterleaveOptions {
  /**
   * Unmeasured rounds of each side before measuring (default 1): JIT, caches
   * and lazily opened files settle first. 0 when a round is too costly to waste.
   */
  warmup?: number;
}

/**
 * Runs `ours` and `baseline` alternately (`runs` times each, after `warmup`
 * rounds of each): interleaving cancels drift on shared VMs, and swapping who
 * goes first each round cancels order effects (a warm page cache, a GC debt).
 */
export async function interleave(
  runs: number,
  ours: () => Promise<number>,
  baseline: () => Promise<number>,
  options: InterleaveOptions = {},
): Promise<{ ours: number[]; baseline: number[] }> {
  const warmup = options.warmup ?? 1;
  if (!Number.isInteger(warmup) || warmup < 0)
    throw new RangeError(`warmup must be ≥ 0: ${warmup}`);
  for (let i = 0; i < warmup; i += 1) {
    await ours();
    await baseline();
  }
  const result = { ours: [] as number[], baseline: [] as number[] };
  for (let i = 0; i < runs; i += 1) {
    if (i % 2 === 0) {
      result.ours.push(await ours());
      result.baseline.push(await baseline());
    } else {
      result.baseline.push(await baseline());
      result.ours.push(await ours());
    }
  }
  return result;
}

/** A scenario that could not run: present in the report with `value: null` and the reason. */
export function skippedScenario(
  id: string,
  name: string,
  unit: string,
  better: "higher" | "lower",
  target: string,
  reason: string,
): ScenarioResult {
  return { id, name, unit, better, runs: [], baseline: null, target, met: null, skipped: reason };
}
