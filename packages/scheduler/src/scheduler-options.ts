/** The scheduler's options, their defaults, and their validation. */
import type { ValidationIssue } from "@orchestrator/core";
import { ValidationError } from "@orchestrator/core";
import type { SchedulerFilter, SchedulerScorer } from "./scheduler-plugin.js";
import { normaliseSeed } from "./seed.js";

/** `binpack` fills nodes (fewer, fuller machines); `spread` prefers the least allocated. */
export type PlacementStrategy = "binpack" | "spread";

/** Weights of the built-in scorers in the combined score (each default 1, 0 turns one off). */
export interface ScoreWeights {
  /** The strategy's scorer (`binpack` or `spread`). */
  resources?: number;
  affinity?: number;
  antiAffinity?: number;
  labelSpread?: number;
}

/** How much each resource counts in the `binpack` and `spread` scores. */
export interface ResourceWeights {
  /** Default 1. */
  memory?: number;
  /** Default 1. */
  cpu?: number;
  /** Default 0: disk is rarely what runs out first. */
  disk?: number;
}

export interface SchedulerOptions {
  /** Default `binpack`. */
  strategy?: PlacementStrategy;
  /** Breaks ties between equal scores; the same seed gives the same placements. Default 0. */
  seed?: number | string;
  /**
   * A safety cap on the search: once this many nodes have been evaluated and
   * one fits, the best found so far wins even if unvisited cells might hold a
   * better one (the explanation says so). The search normally stops long
   * before (default: max(2048, nodes / 4)).
   */
  maxEvaluated?: number;
  /** Evaluate and score every node: explanation counts cover every node; linear time. */
  exhaustive?: boolean;
  weights?: ScoreWeights;
  resourceWeights?: ResourceWeights;
  /** Your own filters, run after the built-in ones. */
  filters?: readonly SchedulerFilter[];
  /** Your own scorers, averaged in with the built-in ones. */
  scorers?: readonly SchedulerScorer[];
}

export interface ResolvedOptions {
  strategy: PlacementStrategy;
  seed: number;
  maxEvaluated: number;
  exhaustive: boolean;
  weights: Required<ScoreWeights>;
  memoryWeight: number;
  cpuWeight: number;
  diskWeight: number;
  filters: readonly SchedulerFilter[];
  scorers: readonly SchedulerScorer[];
}

const isWeight = (value: unknown): value is number =>
  typeof value === "number" && Number.isFinite(value) && value >= 0;

/** Validated options with defaults filled in; throws `ValidationError`. */
export function resolveOptions(options: SchedulerOptions = {}, size = 0): ResolvedOptions {
  const issues: ValidationIssue[] = [];
  if (typeof options !== "object" || options === null)
    throw new ValidationError([{ path: "options", message: "must be an object" }]);
  const strategy = options.strategy ?? "binpack";
  if (strategy !== "binpack" && strategy !== "spread")
    issues.push({ path: "options.strategy", message: "must be binpack or spread" });
  const seed = options.seed ?? 0;
  if (!(typeof seed === "string" || (typeof seed === "number" && Number.isFinite(seed))))
    issues.push({ path: "options.seed", message: "must be a finite number or a string" });
  if (
    options.maxEvaluated !== undefined &&
    !(
      options.maxEvaluated === Number.POSITIVE_INFINITY ||
      (Number.isSafeInteger(options.maxEvaluated) && options.maxEvaluated >= 1)
    )
  )
    issues.push({ path: "options.maxEvaluated", message: "must be an integer ≥ 1 or Infinity" });
  if (options.exhaustive !== undefined && typeof options.exhaustive !== "boolean")
    issues.push({ path: "options.exhaustive", message: "must be a boolean" });
  const weights = {
    resources: 1,
    affinity: 1,
    antiAffinity: 1,
    labelSpread: 1,
    ...options.weights,
  };
  for (const [key, value] of Object.entries(weights))
    if (!isWeight(value))
      issues.push({ path: `options.weights.${key}`, message: "must be a number ≥ 0" });
  const resourceWeights = { memory: 1, cpu: 1, disk: 0, ...options.resourceWeights };
  for (const [key, value] of Object.entries(resourceWeights))
    if (!isWeight(value))
      issues.push({ path: `options.resourceWeights.${key}`, message: "must be a number ≥ 0" });
  if (resourceWeights.memory + resourceWeights.cpu + resourceWeights.disk <= 0)
    issues.push({ path: "options.resourceWeights", message: "at least one must be > 0" });
  const filters = options.filters ?? [];
  const scorers = options.scorers ?? [];
  if (!Array.isArray(filters))
    issues.push({ path: "options.filters", message: "must be an array" });
  else
    filters.forEach((filter: SchedulerFilter, i) => {
      if (typeof filter?.name !== "string" || !filter.name || typeof filter.check !== "function")
        issues.push({ path: `options.filters[${i}]`, message: "must have a name and a check()" });
    });
  if (!Array.isArray(scorers))
    issues.push({ path: "options.scorers", message: "must be an array" });
  else
    scorers.forEach((scorer: SchedulerScorer, i) => {
      if (typeof scorer?.name !== "string" || !scorer.name || typeof scorer.score !== "function")
        issues.push({ path: `options.scorers[${i}]`, message: "must have a name and a score()" });
      else if (scorer.weight !== undefined && !isWeight(scorer.weight))
        issues.push({ path: `options.scorers[${i}].weight`, message: "must be a number ≥ 0" });
    });
  if (issues.length > 0) throw new ValidationError(issues);
  return {
    strategy,
    seed: normaliseSeed(seed),
    maxEvaluated: options.maxEvaluated ?? defaultMaxEvaluated(size),
    exhaustive: options.exhaustive ?? false,
    weights,
    memoryWeight: resourceWeights.memory,
    cpuWeight: resourceWeights.cpu,
    diskWeight: resourceWeights.disk,
    filters,
    scorers,
  };
}

/** The default search cap for a cluster of `size` nodes. */
export function defaultMaxEvaluated(size: number): number {
  return Math.max(2048, Math.ceil(size / 4));
}
