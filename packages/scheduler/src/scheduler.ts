/**
 * The placement pipeline: filters → scorers → normalise → pick (Nomad's
 * feasibility stack and rank iterators, as plain loops over typed arrays).
 *
 * Search: schedulable nodes sit in a grid by free memory and free CPU. Every
 * score is bounded per grid cell (how full its nodes can be, plus the most the
 * soft scorers could add), so the cells are visited best bound first, cells
 * that cannot hold the request are skipped whole, and the search stops when
 * no cell left can beat the best node found. The result is the exhaustive
 * optimum (same score, same seeded tie-break) while evaluating a small part
 * of a large cluster. `exhaustive: true` evaluates every node instead; when
 * nothing fits, an exhaustive pass always writes the explanation, so a
 * pending instance's explanation counts every node.
 */
import type { Resources } from "@orchestrator/core";
import { OrchestratorError, ValidationError } from "@orchestrator/core";
import {
  CELL_SHIFT,
  ClusterState,
  EPSILON,
  PreparedCluster,
  SCHEDULABLE,
} from "./cluster-state.js";
import { constraintKey, describeConstraint } from "./constraint.js";
import {
  countLine,
  type Explanation,
  type FilterCount,
  formatAmount,
  formatScore,
  type ScoreBreakdown,
  type ScoreComponent,
} from "./explanation.js";
import type { NodeSnapshot } from "./node-snapshot.js";
import {
  type Affinity,
  assertValidRequest,
  type Constraint,
  type PlacementRequest,
  type PortRequest,
  type SpreadRule,
} from "./placement-request.js";
import {
  type ResolvedOptions,
  resolveOptions,
  type SchedulerOptions,
} from "./scheduler-options.js";
import type { NodeView } from "./scheduler-plugin.js";

/** The request was placed. */
export interface Placement {
  placed: true;
  /** The request's `id`, when it had one. */
  requestId?: string;
  nodeId: string;
  /** Named host ports: `{ game: 30001, query: 30002 }`. */
  ports: Record<string, number>;
  /** The winner's combined score, -1..1. */
  score: number;
  explanation: Explanation;
}

/** No node fits: a result, never an exception. */
export interface Unplaced {
  placed: false;
  requestId?: string;
  /** One line: "no node fits: 4 nodes: insufficient memory (…); 2 nodes: draining". */
  unplaced: string;
  explanation: Explanation;
}

export type PlacementResult = Placement | Unplaced;

export interface Scheduler {
  /** The snapshot it was prepared from, as given (never modified). */
  readonly nodes: readonly NodeSnapshot[];
  /** Places one request against the snapshot. Changes nothing. */
  place(request: PlacementRequest): PlacementResult;
  /**
   * Places requests in order against one copy of the snapshot; each placement
   * consumes its resources, ports and anti-affinity slot before the next. The
   * results equal a sequence of `place` calls on snapshots updated with
   * `applyPlacement` in between.
   */
  placeBatch(requests: readonly PlacementRequest[]): PlacementResult[];
}

/**
 * Scores closer than this are a tie (the seeded rank decides): sums of
 * floating-point fractions computed in different orders differ in the last bits.
 */
const TIE = 1e-9;

interface LabelTest {
  readonly column: Int32Array;
  readonly table: Uint8Array;
}

interface CompiledSpread {
  readonly rule: SpreadRule;
  readonly valueIds: Int32Array;
  readonly counts: Int32Array;
  readonly max: number;
  /** Score per value at [valueId + 1]; slot 0 (no such label) scores 0. */
  readonly scores: Float64Array;
  readonly weight: number;
}

interface CompiledRequest {
  readonly request: PlacementRequest;
  readonly mem: number;
  readonly cpu: number;
  readonly disk: number;
  readonly runtime: Uint8Array | null;
  readonly constraints: readonly (LabelTest & { constraint: Constraint })[];
  readonly affinities: readonly (LabelTest & { weight: number })[];
  readonly affinityScale: number;
  readonly ports: readonly PortRequest[];
  readonly staticPorts: readonly number[];
  readonly dynamicPorts: number;
  readonly templateCounts: Int32Array | null;
  readonly maxPerNode: number;
  readonly antiWeight: number;
  readonly spreads: readonly CompiledSpread[];
  readonly spreadsCapped: boolean;
  readonly scoreSpreads: boolean;
  /** Weight of the strategy scorer (0 when turned off). */
  readonly fitWeight: number;
  /** Sum of the weights of the built-in scorers that apply. */
  readonly builtInWeight: number;
  /** Sum of the custom scorers' weights. */
  readonly customWeight: number;
  /** The most the weighted soft scores (affinity, anti-affinity, label spread) can add. */
  readonly softMax: number;
  /** Schedulable nodes at the top affinity level, when few enough to evaluate first. */
  readonly preferred: Int32Array | null;
  /** `softMax` for every node not in `preferred`. */
  readonly softMaxOthers: number;
}

/** Counts per filter reason; turned into `FilterCount`s at the end. */
class Tally {
  memory = 0;
  memoryBest = Number.NEGATIVE_INFINITY;
  cpu = 0;
  cpuBest = Number.NEGATIVE_INFINITY;
  disk = 0;
  diskBest = Number.NEGATIVE_INFINITY;
  runtime = 0;
  readonly constraints: number[];
  staticPorts: Map<number, number> | null = null;
  dynamicPorts = 0;
  dynamicPortsBest = Number.NEGATIVE_INFINITY;
  antiAffinity = 0;
  readonly spreads: number[];
  custom: Map<string, { filter: string; reason: string; count: number }> | null = null;

  constructor(compiled: CompiledRequest) {
    this.constraints = new Array(compiled.constraints.length).fill(0);
    this.spreads = new Array(compiled.spreads.length).fill(0);
  }

  staticPort(port: number): void {
    this.staticPorts ??= new Map();
    this.staticPorts.set(port, (this.staticPorts.get(port) ?? 0) + 1);
  }

  customReason(filter: string, reason: string): void {
    this.custom ??= new Map();
    const key = `${filter}\u0000${reason}`;
    const entry = this.custom.get(key);
    if (entry) entry.count += 1;
    else this.custom.set(key, { filter, reason, count: 1 });
  }
}

/** A node as custom filters and scorers see it, read from the state on demand. */
class StateNodeView implements NodeView {
  constructor(
    private readonly state: ClusterState,
    private readonly index: number,
  ) {}

  get node(): NodeSnapshot {
    return this.state.cluster.nodes[this.index]!;
  }

  get capacity(): Resources {
    const c = this.state.cluster;
    const i = this.index;
    return { memoryMb: c.capMem[i]!, cpu: c.capCpu[i]!, diskMb: c.capDisk[i]! };
  }

  get free(): Resources {
    const c = this.state.cluster;
    const i = this.index;
    return {
      memoryMb: c.capMem[i]! - this.state.allocMem[i]!,
      cpu: c.capCpu[i]! - this.state.allocCpu[i]!,
      diskMb: c.capDisk[i]! - this.state.allocDisk[i]!,
    };
  }

  get freePortCount(): number {
    return this.state.freePorts[this.index]!;
  }

  isPortFree(port: number): boolean {
    return !this.state.isPortTaken(this.index, port);
  }

  instancesOf(templateName: string): number {
    return this.state.templateColumn(templateName)[this.index]!;
  }
}

/** What a request's affinities compile to; depends only on them and the snapshot's labels. */
interface AffinityAnalysis {
  readonly tests: readonly (LabelTest & { weight: number })[];
  /** Divides the sum of matched weights: 100, or the sum of |weights| when larger. */
  readonly scale: number;
  /** The highest affinity sum a node can reach. */
  readonly max: number;
  /** Schedulable nodes reaching `max`, when few; most allocated first. */
  readonly preferred: Int32Array | null;
  /** The highest sum any other node can reach. */
  readonly maxOthers: number;
  /** Per label: the affinity sum of each value slot (slot = value id + 1; 0 = label absent). */
  readonly groups: readonly { label: string; sums: Float64Array }[];
}

const NO_AFFINITY: AffinityAnalysis = {
  tests: [],
  scale: 100,
  max: 0,
  preferred: null,
  maxOthers: 0,
  groups: [],
};
const affinityCache = new WeakMap<PreparedCluster, Map<string, AffinityAnalysis>>();

/**
 * Per label: the best and second-best sums over its values. Nodes reaching the
 * best of every label are "preferred"; when few, they are evaluated first and
 * every other node is bounded by the next level down, which keeps a rare
 * affinity ("prefer the GPU nodes") from widening the search. Cached per
 * snapshot: requests repeat the same affinities.
 */
function analyseAffinities(state: ClusterState, list: readonly Affinity[]): AffinityAnalysis {
  const cluster = state.cluster;
  let key = "";
  for (const affinity of list) key += `${constraintKey(affinity)}\u0002${affinity.weight}\u0003`;
  let cache = affinityCache.get(cluster);
  if (cache === undefined) {
    cache = new Map();
    affinityCache.set(cluster, cache);
  }
  const cached = cache.get(key);
  if (cached !== undefined) return cached;
  let weightSum = 0;
  const byLabel = new Map<string, (LabelTest & { weight: number })[]>();
  const tests: (LabelTest & { weight: number })[] = [];
  for (const affinity of list) {
    if (affinity.weight === 0) continue;
    weightSum += Math.abs(affinity.weight);
    const test = {
      column: cluster.labelColumn(affinity.label).valueIds,
      table: cluster.matchTable(affinity),
      weight: affinity.weight,
    };
    tests.push(test);
    let group = byLabel.get(affinity.label);
    if (group === undefined) {
      group = [];
      byLabel.set(affinity.label, group);
    }
    group.push(test);
  }
  // Scaled by 100 so one affinity of weight 30 counts as 0.3, and by the sum
  // when several add up past 100, keeping the score within -1..1.
  const scale = Math.max(100, weightSum);
  let max = 0;
  let smallestDrop = Number.POSITIVE_INFINITY;
  let narrowest: { label: string; slots: number[]; size: number } | null = null;
  const discriminating: { tests: (LabelTest & { weight: number })[]; max: number }[] = [];
  const groups: { label: string; sums: Float64Array }[] = [];
  for (const [label, group] of byLabel) {
    const slots = group[0]!.table.length;
    const sums = new Float64Array(slots);
    groups.push({ label, sums });
    let best = Number.NEGATIVE_INFINITY;
    for (let slot = 0; slot < slots; slot += 1) {
      let sum = 0;
      for (const test of group) if (test.table[slot] === 1) sum += test.weight;
      sums[slot] = sum;
      if (sum > best) best = sum;
    }
    max += best;
    let second = Number.NEGATIVE_INFINITY;
    const bestSlots: number[] = [];
    for (let slot = 0; slot < slots; slot += 1)
      if (sums[slot] === best) bestSlots.push(slot);
      else if (sums[slot]! > second) second = sums[slot]!;
    if (second === Number.NEGATIVE_INFINITY) continue; // every value scores the same
    smallestDrop = Math.min(smallestDrop, best - second);
    discriminating.push({ tests: group, max: best });
    const lists = cluster.labelNodes(label);
    let size = 0;
    for (const slot of bestSlots) size += lists.offsets[slot + 1]! - lists.offsets[slot]!;
    if (narrowest === null || size < narrowest.size) narrowest = { label, slots: bestSlots, size };
  }
  let preferred: Int32Array | null = null;
  let maxOthers = max;
  if (narrowest !== null && narrowest.size <= Math.max(64, cluster.size >> 4)) {
    const lists = cluster.labelNodes(narrowest.label);
    const chosen: number[] = [];
    for (const slot of narrowest.slots)
      for (let k = lists.offsets[slot]!; k < lists.offsets[slot + 1]!; k += 1) {
        const i = lists.nodes[k]!;
        if (cluster.status[i] !== SCHEDULABLE) continue;
        let atBest = true;
        for (const group of discriminating) {
          let sum = 0;
          for (const test of group.tests)
            if (test.table[test.column[i]! + 1] === 1) sum += test.weight;
          if (sum !== group.max) {
            atBest = false;
            break;
          }
        }
        if (atBest) chosen.push(i);
      }
    // Likely winners first, so the others are pruned by their bound.
    chosen.sort((a, b) => state.compare(a, b));
    preferred = Int32Array.from(chosen);
    maxOthers = max - smallestDrop;
  }
  const analysis: AffinityAnalysis = { tests, scale, max, preferred, maxOthers, groups };
  if (cache.size >= 1024) cache.clear();
  cache.set(key, analysis);
  return analysis;
}

/**
 * Which values of `label` the constraints leave open (slot = value id + 1), or
 * null when none constrain it: a soft score only a constrained-out value could
 * reach must not loosen the search's bounds.
 */
function allowedSlots(
  constraints: readonly (LabelTest & { constraint: Constraint })[],
  label: string,
  slots: number,
): Uint8Array | null {
  let allowed: Uint8Array | null = null;
  for (const test of constraints) {
    if (test.constraint.label !== label) continue;
    allowed ??= new Uint8Array(slots).fill(1);
    for (let slot = 0; slot < slots; slot += 1) if (test.table[slot] === 0) allowed[slot] = 0;
  }
  return allowed;
}

function compile(
  state: ClusterState,
  request: PlacementRequest,
  options: ResolvedOptions,
): CompiledRequest {
  const cluster = state.cluster;
  const w = options.weights;
  const constraints: (LabelTest & { constraint: Constraint })[] = [];
  for (const constraint of request.constraints ?? [])
    constraints.push({
      column: cluster.labelColumn(constraint.label).valueIds,
      table: cluster.matchTable(constraint),
      constraint,
    });
  const affinity =
    w.affinity > 0 && request.affinities !== undefined && request.affinities.length > 0
      ? analyseAffinities(state, request.affinities)
      : NO_AFFINITY;
  const { tests: affinities, scale: affinityScale } = affinity;
  let affinityMax = affinity.max;
  let preferred = affinity.preferred;
  let affinityMaxOthers = affinity.maxOthers;
  if (constraints.length > 0 && affinity.groups.length > 0) {
    let constrained = 0;
    for (const group of affinity.groups) {
      const allowed = allowedSlots(constraints, group.label, group.sums.length);
      let best = Number.NEGATIVE_INFINITY;
      for (let slot = 0; slot < group.sums.length; slot += 1)
        if ((allowed === null || allowed[slot] === 1) && group.sums[slot]! > best)
          best = group.sums[slot]!;
      constrained += best === Number.NEGATIVE_INFINITY ? 0 : best;
    }
    if (constrained < affinityMax) {
      // The top level is out of reach: bound every node by what is left.
      affinityMax = constrained;
      preferred = null;
      affinityMaxOthers = constrained;
    }
  }
  const ports = request.ports ?? [];
  const staticPorts: number[] = [];
  for (const port of ports) if (port.port !== undefined) staticPorts.push(port.port);
  const template = request.templateName;
  const maxPerNode = request.antiAffinity?.maxPerNode ?? Number.POSITIVE_INFINITY;
  const antiWeight = w.antiAffinity > 0 ? (request.antiAffinity?.weight ?? 0) / 100 : 0;
  const templateCounts =
    template !== undefined && (maxPerNode !== Number.POSITIVE_INFINITY || antiWeight > 0)
      ? state.templateColumn(template)
      : null;
  const spreads: CompiledSpread[] = [];
  let spreadsCapped = false;
  let spreadMax = 0;
  if (template !== undefined)
    for (const rule of request.spread ?? []) {
      const column = cluster.labelColumn(rule.label);
      const counts = state.labelCountsOf(template, rule.label);
      let min = Number.POSITIVE_INFINITY;
      let total = 0;
      for (const count of counts) {
        if (count < min) min = count;
        total += count;
      }
      // The least loaded value scores 1; others lose in proportion to how far
      // above it they are, relative to the average load (a 1-instance
      // imbalance among thousands barely matters; among few, it does).
      const mean = counts.length > 0 ? total / counts.length : 0;
      const scores = new Float64Array(counts.length + 1);
      for (let v = 0; v < counts.length; v += 1)
        scores[v + 1] = Math.max(0, 1 - (counts[v]! - min) / (mean + 1));
      const cap = rule.maxPerValue ?? Number.POSITIVE_INFINITY;
      if (cap !== Number.POSITIVE_INFINITY) spreadsCapped = true;
      const weight = (rule.weight ?? 50) / 100;
      const allowed = allowedSlots(constraints, rule.label, counts.length + 1);
      let best = 0;
      for (let slot = 0; slot < scores.length; slot += 1)
        if ((allowed === null || allowed[slot] === 1) && scores[slot]! > best) best = scores[slot]!;
      spreadMax += weight * best;
      spreads.push({ rule, valueIds: column.valueIds, counts, max: cap, scores, weight });
    }
  const scoreSpreads = spreads.length > 0 && w.labelSpread > 0;
  const useAffinity = affinities.length > 0;
  const fitWeight = w.resources;
  const builtInWeight =
    fitWeight +
    (useAffinity ? w.affinity : 0) +
    (antiWeight > 0 ? w.antiAffinity : 0) +
    (scoreSpreads ? w.labelSpread : 0);
  let customWeight = 0;
  for (const scorer of options.scorers) customWeight += scorer.weight ?? 1;
  const otherSoft =
    (antiWeight > 0 ? w.antiAffinity * antiWeight : 0) +
    (scoreSpreads ? (w.labelSpread * spreadMax) / spreads.length : 0);
  const softMax = (useAffinity ? (w.affinity * affinityMax) / affinityScale : 0) + otherSoft;
  const softMaxOthers =
    preferred === null ? softMax : (w.affinity * affinityMaxOthers) / affinityScale + otherSoft;
  return {
    request,
    mem: request.resources.memoryMb,
    cpu: request.resources.cpu ?? 0,
    disk: request.resources.diskMb ?? 0,
    runtime: request.runtime === undefined ? null : cluster.runtimeColumn(request.runtime),
    constraints,
    affinities,
    affinityScale,
    ports,
    staticPorts,
    dynamicPorts: ports.length - staticPorts.length,
    templateCounts,
    maxPerNode,
    antiWeight,
    spreads: scoreSpreads || spreadsCapped ? spreads : [],
    spreadsCapped,
    scoreSpreads,
    fitWeight,
    builtInWeight,
    customWeight,
    softMax,
    preferred,
    softMaxOthers,
  };
}

/** The weighted soft part of node `i`'s score (same units as `softMax`). */
function softScore(cr: CompiledRequest, i: number, options: ResolvedOptions): number {
  const w = options.weights;
  let sum = 0;
  if (cr.affinities.length > 0) sum += w.affinity * affinityScore(cr, i);
  if (cr.antiWeight > 0) sum += w.antiAffinity * antiAffinityScore(cr, i);
  if (cr.scoreSpreads) sum += w.labelSpread * labelSpreadScore(cr, i);
  return sum;
}

function affinityScore(cr: CompiledRequest, i: number): number {
  let sum = 0;
  for (const affinity of cr.affinities)
    if (affinity.table[affinity.column[i]! + 1] === 1) sum += affinity.weight;
  return sum / cr.affinityScale;
}

function antiAffinityScore(cr: CompiledRequest, i: number): number {
  return cr.antiWeight / (1 + cr.templateCounts![i]!);
}

function labelSpreadScore(cr: CompiledRequest, i: number): number {
  let sum = 0;
  for (const spread of cr.spreads) sum += spread.weight * spread.scores[spread.valueIds[i]! + 1]!;
  return sum / cr.spreads.length;
}

/** The strategy score of node `i` (binpack: utilisation after placing; spread: 1 − that). */
function fitScore(state: ClusterState, cr: CompiledRequest, i: number): number {
  const c = state.cluster;
  const w = c.weights;
  let sum = 0;
  if (w.memory > 0) {
    const cap = c.capMem[i]!;
    sum += w.memory * (cap > 0 ? (state.allocMem[i]! + cr.mem) / cap : 1);
  }
  if (w.cpu > 0) {
    const cap = c.capCpu[i]!;
    sum += w.cpu * (cap > 0 ? (state.allocCpu[i]! + cr.cpu) / cap : 1);
  }
  if (w.disk > 0) {
    const cap = c.capDisk[i]!;
    sum += w.disk * (cap > 0 ? (state.allocDisk[i]! + cr.disk) / cap : 1);
  }
  const used = sum / c.weightSum;
  return c.fullestFirst ? used : 1 - used;
}

function customScore(name: string, value: number | null): number | null {
  if (value === null) return null;
  if (typeof value !== "number" || !Number.isFinite(value))
    throw new OrchestratorError(
      "INTERNAL",
      `scorer '${name}' returned ${String(value)}, not a number in -1..1`,
    );
  return Math.max(-1, Math.min(1, value));
}

/** Scores `i`; with `components`, also records each scorer's part. */
function score(
  state: ClusterState,
  cr: CompiledRequest,
  i: number,
  options: ResolvedOptions,
  components: ScoreComponent[] | null,
): number {
  const w = options.weights;
  let sum = 0;
  let weights = 0;
  if (cr.fitWeight > 0) {
    const fit = fitScore(state, cr, i);
    sum += cr.fitWeight * fit;
    weights += cr.fitWeight;
    components?.push({ scorer: options.strategy, score: fit, weight: cr.fitWeight });
  }
  if (cr.affinities.length > 0) {
    const value = affinityScore(cr, i);
    sum += w.affinity * value;
    weights += w.affinity;
    components?.push({ scorer: "affinity", score: value, weight: w.affinity });
  }
  if (cr.antiWeight > 0) {
    const value = antiAffinityScore(cr, i);
    sum += w.antiAffinity * value;
    weights += w.antiAffinity;
    components?.push({ scorer: "anti-affinity", score: value, weight: w.antiAffinity });
  }
  if (cr.scoreSpreads) {
    const value = labelSpreadScore(cr, i);
    sum += w.labelSpread * value;
    weights += w.labelSpread;
    components?.push({ scorer: "label-spread", score: value, weight: w.labelSpread });
  }
  if (options.scorers.length > 0) {
    const view = new StateNodeView(state, i);
    for (const scorer of options.scorers) {
      const weight = scorer.weight ?? 1;
      if (weight === 0) continue;
      const value = customScore(scorer.name, scorer.score(view, cr.request));
      if (value === null) continue;
      sum += weight * value;
      weights += weight;
      components?.push({ scorer: scorer.name, score: value, weight });
    }
  }
  return weights > 0 ? sum / weights : 0;
}

/**
 * The highest total score a node whose strategy score is at most `fit` could
 * reach: its soft scores all at their maximum, custom scorers at 1. (A custom
 * scorer that abstains shrinks the denominator, hence the max of both forms.)
 */
function totalBound(cr: CompiledRequest, fit: number, softMax: number): number {
  if (cr.builtInWeight === 0) return cr.customWeight > 0 ? 1 : 0;
  const builtIn = (cr.fitWeight * fit + softMax) / cr.builtInWeight;
  if (cr.customWeight === 0) return builtIn;
  return Math.max(
    builtIn,
    (cr.builtInWeight * builtIn + cr.customWeight) / (cr.builtInWeight + cr.customWeight),
  );
}

/** Does node `i` with score `s` beat the current best? Ties go to the lower seeded rank. */
function beats(rank: Uint32Array, i: number, s: number, best: number, bestScore: number): boolean {
  if (best < 0 || s > bestScore + TIE) return true;
  if (s < bestScore - TIE) return false;
  return rank[i]! < rank[best]! || (rank[i] === rank[best] && i < best);
}

/** Runs every filter on node `i` in order; records the first rejection. True when it passes. */
function feasible(
  state: ClusterState,
  cr: CompiledRequest,
  i: number,
  tally: Tally,
  options: ResolvedOptions,
): boolean {
  const cluster = state.cluster;
  const freeMem = cluster.capMem[i]! - state.allocMem[i]!;
  if (freeMem < cr.mem - EPSILON) {
    tally.memory += 1;
    if (freeMem > tally.memoryBest) tally.memoryBest = freeMem;
    return false;
  }
  const freeCpu = cluster.capCpu[i]! - state.allocCpu[i]!;
  if (freeCpu < cr.cpu - EPSILON) {
    tally.cpu += 1;
    if (freeCpu > tally.cpuBest) tally.cpuBest = freeCpu;
    return false;
  }
  const freeDisk = cluster.capDisk[i]! - state.allocDisk[i]!;
  if (freeDisk < cr.disk - EPSILON) {
    tally.disk += 1;
    if (freeDisk > tally.diskBest) tally.diskBest = freeDisk;
    return false;
  }
  if (cr.runtime !== null && cr.runtime[i] === 0) {
    tally.runtime += 1;
    return false;
  }
  const constraints = cr.constraints;
  for (let c = 0; c < constraints.length; c += 1) {
    const test = constraints[c]!;
    if (test.table[test.column[i]! + 1] === 0) {
      tally.constraints[c]! += 1;
      return false;
    }
  }
  if (cr.ports.length > 0) {
    let staticInRange = 0;
    const from = cluster.portFrom[i]!;
    const to = cluster.portTo[i]!;
    for (const port of cr.staticPorts) {
      if (state.isPortTaken(i, port)) {
        tally.staticPort(port);
        return false;
      }
      if (port >= from && port <= to) staticInRange += 1;
    }
    // Free static ports inside the dynamic range use up dynamic capacity.
    const available = state.freePorts[i]! - staticInRange;
    if (available < cr.dynamicPorts) {
      tally.dynamicPorts += 1;
      if (available > tally.dynamicPortsBest) tally.dynamicPortsBest = available;
      return false;
    }
  }
  if (cr.templateCounts !== null && cr.templateCounts[i]! >= cr.maxPerNode) {
    tally.antiAffinity += 1;
    return false;
  }
  if (cr.spreadsCapped) {
    const spreads = cr.spreads;
    for (let s = 0; s < spreads.length; s += 1) {
      const spread = spreads[s]!;
      const value = spread.valueIds[i]!;
      if (value >= 0 && spread.counts[value]! >= spread.max) {
        tally.spreads[s]! += 1;
        return false;
      }
    }
  }
  if (options.filters.length > 0) {
    const view = new StateNodeView(state, i);
    for (const filter of options.filters) {
      const reason = filter.check(view, cr.request);
      if (reason !== undefined) {
        tally.customReason(filter.name, String(reason));
        return false;
      }
    }
  }
  return true;
}

interface SearchResult {
  best: number;
  bestScore: number;
  tally: Tally;
  evaluated: number;
  feasible: number;
  /** The search stopped at `maxEvaluated` with cells it could not rule out. */
  truncated: boolean;
}

/** Filters and scores every schedulable node. */
function exhaustiveSearch(
  state: ClusterState,
  cr: CompiledRequest,
  options: ResolvedOptions,
): SearchResult {
  const cluster = state.cluster;
  const tally = new Tally(cr);
  const rank = cluster.rank;
  let best = -1;
  let bestScore = Number.NEGATIVE_INFINITY;
  let found = 0;
  for (const i of cluster.schedulable) {
    if (!feasible(state, cr, i, tally, options)) continue;
    found += 1;
    const s = score(state, cr, i, options, null);
    if (beats(rank, i, s, best, bestScore)) {
      best = i;
      bestScore = s;
    }
  }
  return {
    best,
    bestScore,
    tally,
    evaluated: cluster.schedulable.length,
    feasible: found,
    truncated: false,
  };
}

/** The index after the run of nodes with the same key as `list[from]` (keys are sorted). */
function endOfKeyRun(list: readonly number[], key: Float64Array, from: number): number {
  const value = key[list[from]!]!;
  let low = from + 1;
  let high = list.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (key[list[mid]!] === value) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** What share of `cap` `need` is (0 for a resource the node does not have). */
function share(need: number, cap: number): number {
  return cap > 0 ? need / cap : 0;
}

/** Branch and bound over the grid (see the file header). */
function gridSearch(
  state: ClusterState,
  cr: CompiledRequest,
  options: ResolvedOptions,
  maxEvaluated: number,
): SearchResult {
  const cluster = state.cluster;
  const tally = new Tally(cr);
  const rank = cluster.rank;
  const key = state.key;
  const w = cluster.weights;
  const weightSum = cluster.weightSum;
  const binpack = cluster.fullestFirst;
  const { memBounds, cpuBounds, diskBounds, uniform } = cluster;
  // The request's own share of a node, at its largest (binpack bound) and
  // smallest (spread bound) over all node sizes.
  const shareMax =
    (w.memory * share(cr.mem, memBounds.min) +
      w.cpu * share(cr.cpu, cpuBounds.min) +
      w.disk * share(cr.disk, diskBounds.min)) /
    weightSum;
  const shareMin =
    (w.memory * share(cr.mem, memBounds.max) +
      w.cpu * share(cr.cpu, cpuBounds.max) +
      w.disk * share(cr.disk, diskBounds.max)) /
    weightSum;
  // Largest free amount a cell can hold: (coordinate + 1)/grid of the largest capacity.
  const grid = cluster.grid;
  const memCell = memBounds.max / grid;
  const cpuCell = cpuBounds.max / grid;
  const memNeed = cr.mem - EPSILON;
  const cpuNeed = cr.cpu - EPSILON;
  // Coordinates include CELL_SHIFT, so a cell's lower edge may sit that much
  // above its nodes' free amounts: the binpack bound allows for it.
  const cellSlack =
    (w.memory * share(CELL_SHIFT, memBounds.min) + w.cpu * share(CELL_SHIFT, cpuBounds.min)) /
    weightSum;
  const capMem = cluster.capMem;
  const allocMem = state.allocMem;
  const order = cluster.bucketOrder;
  const buckets = state.buckets;
  let best = -1;
  let bestScore = Number.NEGATIVE_INFINITY;
  let evaluated = 0;
  let found = 0;
  let truncated = false;
  let softMax = cr.softMax;
  const hasSoft = cr.affinities.length > 0 || cr.antiWeight > 0 || cr.scoreSpreads;
  let mark = 0;
  const marks = cluster.marks;
  if (cr.preferred !== null) {
    mark = cluster.nextMark();
    const preferred = cr.preferred;
    for (let p = 0; p < preferred.length; p += 1) {
      const i = preferred[p]!;
      marks[i] = mark;
      if (
        best >= 0 &&
        totalBound(cr, binpack ? key[i]! + shareMax : 1 - key[i]! - shareMin, softMax) <
          bestScore - TIE
      )
        continue;
      evaluated += 1;
      if (!feasible(state, cr, i, tally, options)) continue;
      found += 1;
      const s = score(state, cr, i, options, null);
      if (beats(rank, i, s, best, bestScore)) {
        best = i;
        bestScore = s;
      }
    }
    softMax = cr.softMaxOthers;
  }
  const occupied = state.occupied;
  // Occupied cells in visiting order: the lowest set bit of each word first.
  search: for (let word = 0; word < occupied.length; word += 1) {
    let bits = occupied[word]!;
    while (bits !== 0) {
      const low = bits & -bits;
      bits ^= low;
      const k = (word << 5) + 31 - Math.clz32(low);
      const b = order[k]!;
      const list = buckets[b]!;
      const x = (b / grid) | 0;
      const y = b - x * grid;
      // Nobody in this cell has enough memory or CPU: skip it whole. Below the
      // top cell, free < (x + 1)·cell − CELL_SHIFT; the top cell holds up to the
      // largest capacity.
      if (
        (x + 1 < grid
          ? cr.mem > EPSILON && (x + 1) * memCell <= cr.mem
          : memBounds.max < memNeed) ||
        (y + 1 < grid ? cr.cpu > EPSILON && (y + 1) * cpuCell <= cr.cpu : cpuBounds.max < cpuNeed)
      )
        continue;
      if (best >= 0) {
        // Utilisation within the cell: free fractions lie in [x/grid, (x+1)/grid).
        const fitBound = binpack
          ? (w.memory * (1 - x / grid) + w.cpu * (1 - y / grid) + w.disk) / weightSum +
            shareMax +
            cellSlack
          : 1 -
            ((w.memory * (1 - (x + 1) / grid) + w.cpu * (1 - (y + 1) / grid)) / weightSum +
              shareMin);
        // Cells come in falling order of this bound: none left can win.
        if (totalBound(cr, fitBound, softMax) < bestScore - TIE) break search;
      }
      for (let j = 0; j < list.length; j += 1) {
        const i = list[j]!;
        if (mark !== 0 && marks[i] === mark) continue; // a preferred node, already evaluated
        if (best >= 0) {
          // Nodes later in the cell are at most as good a fit as this one's key says.
          const fit = binpack ? key[i]! + shareMax : 1 - key[i]! - shareMin;
          const bound = totalBound(cr, fit, softMax);
          if (bound < bestScore - TIE) break;
          // Same capacities everywhere: the bound is exact, so this node and the
          // rest of its run of equal keys (which come in rank order) can at best
          // tie and lose the tie. Skip the run; a lower key is judged on its own
          // bound (a key lower by less than TIE can still tie and win on rank).
          if (uniform && bound <= bestScore + TIE && rank[i]! > rank[best]!) {
            j = endOfKeyRun(list, key, j) - 1;
            continue;
          }
        }
        // Boundary cells hold nodes just short of memory: reject those before
        // reading soft scores (memory is the first filter anyway).
        const freeMem = capMem[i]! - allocMem[i]!;
        if (freeMem < memNeed) {
          evaluated += 1;
          tally.memory += 1;
          if (freeMem > tally.memoryBest) tally.memoryBest = freeMem;
          continue;
        }
        // This node's own soft scores are cheap to read: skip it unfiltered if they cannot win.
        if (
          best >= 0 &&
          hasSoft &&
          totalBound(
            cr,
            binpack ? key[i]! + shareMax : 1 - key[i]! - shareMin,
            softScore(cr, i, options),
          ) <
            bestScore - TIE
        )
          continue;
        evaluated += 1;
        if (!feasible(state, cr, i, tally, options)) continue;
        found += 1;
        const s = score(state, cr, i, options, null);
        if (beats(rank, i, s, best, bestScore)) {
          best = i;
          bestScore = s;
        }
      }
      if (evaluated >= maxEvaluated && best >= 0) {
        truncated = k < order.length - 1;
        break search;
      }
    }
  }
  return { best, bestScore, tally, evaluated, feasible: found, truncated };
}

function filteredCounts(state: ClusterState, cr: CompiledRequest, tally: Tally): FilterCount[] {
  const cluster = state.cluster;
  const out: FilterCount[] = [];
  if (cluster.offline > 0)
    out.push({ filter: "status", count: cluster.offline, reason: "offline" });
  if (cluster.draining > 0)
    out.push({ filter: "draining", count: cluster.draining, reason: "draining" });
  if (tally.memory > 0)
    out.push({
      filter: "memory",
      count: tally.memory,
      reason: `insufficient memory (need ${formatAmount(cr.mem)} MB, best has ${formatAmount(Math.max(0, tally.memoryBest))} MB)`,
    });
  if (tally.cpu > 0)
    out.push({
      filter: "cpu",
      count: tally.cpu,
      reason: `insufficient CPU (need ${formatAmount(cr.cpu)} ${cr.cpu === 1 ? "core" : "cores"}, best has ${formatAmount(Math.max(0, tally.cpuBest))})`,
    });
  if (tally.disk > 0)
    out.push({
      filter: "disk",
      count: tally.disk,
      reason: `insufficient disk (need ${formatAmount(cr.disk)} MB, best has ${formatAmount(Math.max(0, tally.diskBest))} MB)`,
    });
  if (tally.runtime > 0)
    out.push({
      filter: "runtime",
      count: tally.runtime,
      reason: `runtime ${cr.request.runtime} not offered`,
    });
  for (let c = 0; c < cr.constraints.length; c += 1)
    if (tally.constraints[c]! > 0)
      out.push({
        filter: "constraint",
        count: tally.constraints[c]!,
        reason: describeConstraint(cr.constraints[c]!.constraint),
      });
  if (tally.staticPorts !== null)
    for (const [port, count] of tally.staticPorts)
      out.push({ filter: "ports", count, reason: `port ${port} already in use` });
  if (tally.dynamicPorts > 0)
    out.push({
      filter: "ports",
      count: tally.dynamicPorts,
      reason: `not enough free ports (need ${cr.dynamicPorts}, best has ${Math.max(0, tally.dynamicPortsBest)})`,
    });
  if (tally.antiAffinity > 0)
    out.push({
      filter: "anti-affinity",
      count: tally.antiAffinity,
      reason: `already at the limit of ${cr.maxPerNode} ${cr.maxPerNode === 1 ? "instance" : "instances"} of ${cr.request.templateName} per node`,
    });
  for (let s = 0; s < cr.spreads.length; s += 1)
    if (tally.spreads[s]! > 0) {
      const spread = cr.spreads[s]!;
      out.push({
        filter: "spread",
        count: tally.spreads[s]!,
        reason: `already at the limit of ${spread.max} ${spread.max === 1 ? "instance" : "instances"} of ${cr.request.templateName} per ${spread.rule.label} value`,
      });
    }
  if (tally.custom !== null)
    for (const entry of tally.custom.values())
      out.push({ filter: entry.filter, count: entry.count, reason: entry.reason });
  return out;
}

/** "binpack 0.912, affinity 0.400 ×2" */
function describeComponents(components: readonly ScoreComponent[]): string {
  let text = "";
  for (const c of components) {
    if (text !== "") text += ", ";
    text += `${c.scorer} ${formatScore(c.score)}`;
    if (c.weight !== 1) text += ` ×${formatAmount(c.weight)}`;
  }
  return text;
}

function plural(count: number, word: string): string {
  return `${count} ${count === 1 ? word : `${word}s`}`;
}

function decide(
  state: ClusterState,
  request: PlacementRequest,
  options: ResolvedOptions,
): { result: PlacementResult; node: number; compiled: CompiledRequest } {
  const cr = compile(state, request, options);
  const cluster = state.cluster;
  let search = options.exhaustive
    ? exhaustiveSearch(state, cr, options)
    : gridSearch(state, cr, options, options.maxEvaluated);
  // Nothing fits: count every node's reason, so the explanation is complete.
  if (search.best < 0 && !options.exhaustive) search = exhaustiveSearch(state, cr, options);
  const filtered = filteredCounts(state, cr, search.tally);
  const nodes = cluster.size;
  const lines: string[] = [];
  if (search.best < 0) {
    const reasons = filtered.map((entry) => countLine(entry.count, entry.reason));
    const summary =
      nodes === 0
        ? "no node fits: the snapshot has no nodes"
        : `no node fits: ${reasons.join("; ")}`;
    lines.push(nodes === 0 ? summary : `no node fits (${plural(nodes, "node")} evaluated)`);
    for (const reason of reasons) lines.push(reason);
    const explanation: Explanation = {
      nodes,
      evaluated: nodes,
      feasible: 0,
      notEvaluated: 0,
      filtered,
      winner: null,
      lines,
    };
    const result: Unplaced = { placed: false, unplaced: summary, explanation };
    if (request.id !== undefined) result.requestId = request.id;
    return { result, node: -1, compiled: cr };
  }
  const best = search.best;
  const components: ScoreComponent[] = [];
  const total = score(state, cr, best, options, components);
  const nodeId = cluster.ids[best]!;
  const winner: ScoreBreakdown = { nodeId, total, components };
  const ports = cr.ports.length > 0 ? state.choosePorts(best, cr.ports, cr.staticPorts) : {};
  const notEvaluated = cluster.schedulable.length - search.evaluated;
  const evaluated = nodes - notEvaluated;
  lines.push(
    `placed on ${nodeId} with score ${formatScore(total)} (${describeComponents(components)})`,
  );
  lines.push(
    `${evaluated} of ${plural(nodes, "node")} evaluated, ${search.feasible} feasible` +
      (notEvaluated === 0
        ? ""
        : search.truncated
          ? `, ${notEvaluated} not evaluated (search limit of ${options.maxEvaluated} reached)`
          : `, ${notEvaluated} not evaluated (could not fit or could not score higher)`),
  );
  for (const entry of filtered) lines.push(countLine(entry.count, entry.reason));
  const explanation: Explanation = {
    nodes,
    evaluated,
    feasible: search.feasible,
    notEvaluated,
    filtered,
    winner,
    lines,
  };
  const result: Placement = { placed: true, nodeId, ports, score: total, explanation };
  if (request.id !== undefined) result.requestId = request.id;
  return { result, node: best, compiled: cr };
}

class PreparedScheduler implements Scheduler {
  readonly nodes: readonly NodeSnapshot[];
  private readonly options: ResolvedOptions;
  private readonly base: ClusterState;

  constructor(nodes: readonly NodeSnapshot[], options: SchedulerOptions) {
    this.options = resolveOptions(options, Array.isArray(nodes) ? nodes.length : 0);
    const o = this.options;
    const cluster = new PreparedCluster(
      nodes,
      o.seed,
      { memory: o.memoryWeight, cpu: o.cpuWeight, disk: o.diskWeight },
      o.strategy === "binpack",
    );
    this.nodes = nodes;
    this.base = ClusterState.initial(cluster);
  }

  place(request: PlacementRequest): PlacementResult {
    assertValidRequest(request);
    return decide(this.base, request, this.options).result;
  }

  placeBatch(requests: readonly PlacementRequest[]): PlacementResult[] {
    if (!Array.isArray(requests))
      throw new ValidationError([{ path: "requests", message: "must be an array" }]);
    requests.forEach((request, i) => {
      assertValidRequest(request, `requests[${i}]`);
    });
    const state = this.base.fork();
    const results: PlacementResult[] = [];
    for (const request of requests) {
      const { result, node, compiled } = decide(state, request, this.options);
      if (result.placed)
        state.commit(
          node,
          { memoryMb: compiled.mem, cpu: compiled.cpu, diskMb: compiled.disk },
          result.ports,
          request.templateName,
        );
      results.push(result);
    }
    return results;
  }
}

/**
 * Prepares a snapshot for many placements (O(n log n) once); each placement
 * then evaluates only the nodes that could win. The snapshot is never modified.
 */
export function createScheduler(
  nodes: readonly NodeSnapshot[],
  options: SchedulerOptions = {},
): Scheduler {
  return new PreparedScheduler(nodes, options);
}

/** Places one request (prepares the snapshot first: for many placements, use `createScheduler`). */
export function place(
  request: PlacementRequest,
  nodes: readonly NodeSnapshot[],
  options: SchedulerOptions = {},
): PlacementResult {
  return createScheduler(nodes, options).place(request);
}

/** Places many requests against one snapshot, each consuming what it was given. */
export function placeBatch(
  requests: readonly PlacementRequest[],
  nodes: readonly NodeSnapshot[],
  options: SchedulerOptions = {},
): PlacementResult[] {
  return createScheduler(nodes, options).placeBatch(requests);
}
