/**
 * The prepared form of a snapshot: columns in typed arrays, label values
 * interned per key, and a grid index of schedulable nodes by free memory and
 * free CPU (as fractions of capacity). Each grid cell ("bucket") keeps its
 * nodes sorted by how allocated they are, so a placement can visit buckets in
 * the order of the best score they could hold and stop as soon as no bucket
 * left can beat the best node found (see scheduler.ts). `ClusterState` is the
 * mutable part (what is allocated); a batch works on a fork of it, so the
 * given snapshot and the scheduler's own base state are never changed.
 */
import type { NodeStatus, ValidationIssue } from "@orchestrator/core";
import { NODE_STATUSES, ValidationError } from "@orchestrator/core";
import { constraintKey, constraintMatcher, labelValue } from "./constraint.js";
import type { NodeSnapshot } from "./node-snapshot.js";
import type { Constraint } from "./placement-request.js";
import { nodeRank } from "./seed.js";

/** Tolerance of every fit check: sums of fractional CPUs are not exact in floating point. */
export const EPSILON = 1e-6;

export const SCHEDULABLE = 0;
export const OFFLINE = 1;
export const DRAINING = 2;

/** A label's value on every node, interned: `valueIds[node]` indexes `values`, -1 when absent. */
export interface LabelColumn {
  readonly valueIds: Int32Array;
  readonly values: readonly string[];
}

/**
 * Nodes grouped by label value: slot `valueId + 1` (slot 0: label absent)
 * holds `nodes[offsets[slot] .. offsets[slot + 1])`.
 */
export interface LabelNodes {
  readonly offsets: Int32Array;
  readonly nodes: Int32Array;
}

const NO_PORTS: ReadonlySet<number> = new Set();
const MAX_CACHED_TABLES = 4096;

const isFiniteNonNegative = (value: unknown): value is number =>
  typeof value === "number" && Number.isFinite(value) && value >= 0;

function nodeIssues(node: NodeSnapshot, path: string, issues: ValidationIssue[]): void {
  if (typeof node !== "object" || node === null) {
    issues.push({ path, message: "must be an object" });
    return;
  }
  if (typeof node.id !== "string" || node.id.length === 0)
    issues.push({ path: `${path}.id`, message: "must be a non-empty string" });
  if (node.status !== undefined && !NODE_STATUSES.includes(node.status as NodeStatus))
    issues.push({ path: `${path}.status`, message: `must be one of ${NODE_STATUSES.join(", ")}` });
  for (const part of ["capacity", "allocated"] as const) {
    const resources = node[part];
    if (resources === undefined && part === "allocated") continue;
    if (typeof resources !== "object" || resources === null) {
      issues.push({ path: `${path}.${part}`, message: "must be an object" });
      continue;
    }
    for (const key of ["memoryMb", "cpu", "diskMb"] as const)
      if (!isFiniteNonNegative(resources[key]))
        issues.push({ path: `${path}.${part}.${key}`, message: "must be a number ≥ 0" });
  }
  if (
    node.overcommit !== undefined &&
    !(
      typeof node.overcommit === "number" &&
      Number.isFinite(node.overcommit) &&
      node.overcommit > 0
    )
  )
    issues.push({ path: `${path}.overcommit`, message: "must be a number > 0" });
  if (node.portRange !== undefined) {
    const { from, to } = node.portRange;
    if (!Number.isInteger(from) || !Number.isInteger(to) || from < 1 || to > 65535 || from > to)
      issues.push({ path: `${path}.portRange`, message: "must satisfy 1 ≤ from ≤ to ≤ 65535" });
  }
  for (const part of ["reservedPorts", "usedPorts"] as const) {
    const ports = node[part];
    if (ports !== undefined && (!Array.isArray(ports) || !ports.every(Number.isInteger)))
      issues.push({ path: `${path}.${part}`, message: "must be an array of integers" });
  }
  if (
    node.runtimes !== undefined &&
    (!Array.isArray(node.runtimes) || !node.runtimes.every((r) => typeof r === "string"))
  )
    issues.push({ path: `${path}.runtimes`, message: "must be an array of strings" });
  if (node.labels !== undefined) {
    if (typeof node.labels !== "object" || node.labels === null)
      issues.push({ path: `${path}.labels`, message: "must be an object" });
    else
      for (const [key, value] of Object.entries(node.labels))
        if (typeof value !== "string")
          issues.push({ path: `${path}.labels.${key}`, message: "must be a string" });
  }
  if (node.templateCounts !== undefined) {
    if (typeof node.templateCounts !== "object" || node.templateCounts === null)
      issues.push({ path: `${path}.templateCounts`, message: "must be an object" });
    else
      for (const [key, value] of Object.entries(node.templateCounts))
        if (!Number.isSafeInteger(value) || value < 0)
          issues.push({ path: `${path}.templateCounts.${key}`, message: "must be an integer ≥ 0" });
  }
}

/**
 * Grid cells per axis (grid × grid buckets over free memory and free CPU
 * fractions): about one node per cell, between 8 and 32 per axis. A finer grid
 * bounds scores more tightly, so fewer nodes are evaluated; skipping its empty
 * cells costs far less than evaluating nodes (measured: at 1,000 nodes a
 * 32-cell side evaluates less than half the nodes an 11-cell side does).
 */
export function gridSize(nodes: number): number {
  return Math.min(32, Math.max(8, Math.round(Math.sqrt(nodes))));
}

/** How the utilisation of a node is measured (the strategy scorers' weights). */
export interface UtilisationWeights {
  readonly memory: number;
  readonly cpu: number;
  readonly disk: number;
}

/** Bounds of effective capacity over schedulable nodes with a non-zero capacity. */
export interface CapacityBounds {
  readonly min: number;
  readonly max: number;
}

function capacityBounds(caps: Float64Array, schedulable: readonly number[]): CapacityBounds {
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  for (const i of schedulable) {
    const cap = caps[i]!;
    if (cap <= 0) continue;
    if (cap < min) min = cap;
    if (cap > max) max = cap;
  }
  return min === Number.POSITIVE_INFINITY ? { min: 0, max: 0 } : { min, max };
}

/** Immutable columns of a snapshot plus caches that are pure functions of it. */
export class PreparedCluster {
  readonly size: number;
  readonly nodes: readonly NodeSnapshot[];
  readonly ids: readonly string[];
  readonly indexById: ReadonlyMap<string, number>;
  /** SCHEDULABLE, OFFLINE or DRAINING per node. */
  readonly status: Uint8Array;
  readonly offline: number;
  readonly draining: number;
  /** Indices of schedulable nodes, ascending. */
  readonly schedulable: Int32Array;
  /** Effective capacity (overcommit applied to memory and CPU). */
  readonly capMem: Float64Array;
  readonly capCpu: Float64Array;
  readonly capDisk: Float64Array;
  readonly memBounds: CapacityBounds;
  readonly cpuBounds: CapacityBounds;
  readonly diskBounds: CapacityBounds;
  /** Every schedulable node has the same capacity in each weighted resource. */
  readonly uniform: boolean;
  /** Inclusive dynamic port range; `portTo < portFrom` when the node has none. */
  readonly portFrom: Int32Array;
  readonly portTo: Int32Array;
  /** Seeded tie-breaking rank. */
  readonly rank: Uint32Array;
  /** Reserved plus used ports per node, as given. */
  readonly basePorts: readonly ReadonlySet<number>[];
  readonly weights: UtilisationWeights;
  readonly weightSum: number;
  /** binpack visits the most allocated first; spread the least. */
  readonly fullestFirst: boolean;
  /** Cells per axis of the grid index. */
  readonly grid: number;
  /** Bucket ids from the best possible score to the worst. */
  readonly bucketOrder: Int32Array;
  /** Position of each bucket id in `bucketOrder`. */
  readonly bucketPosition: Int32Array;
  readonly initialAllocMem: Float64Array;
  readonly initialAllocCpu: Float64Array;
  readonly initialAllocDisk: Float64Array;
  readonly initialFreePorts: Int32Array;

  /** Scratch marks for one search (see `nextMark`). */
  readonly marks: Uint32Array;
  private mark = 0;
  private readonly labelColumns = new Map<string, LabelColumn>();
  private readonly labelNodeLists = new Map<string, LabelNodes>();
  private readonly runtimeColumns = new Map<string, Uint8Array>();
  private readonly matchTables = new Map<string, Uint8Array>();
  private readonly templateColumns = new Map<string, Int32Array>();

  constructor(
    nodes: readonly NodeSnapshot[],
    seed: number,
    weights: UtilisationWeights,
    fullestFirst: boolean,
  ) {
    if (!Array.isArray(nodes))
      throw new ValidationError([{ path: "nodes", message: "must be an array" }]);
    const issues: ValidationIssue[] = [];
    const n = nodes.length;
    const indexById = new Map<string, number>();
    for (let i = 0; i < n && issues.length < 20; i += 1) {
      const node = nodes[i]!;
      nodeIssues(node, `nodes[${i}]`, issues);
      if (typeof node?.id === "string") {
        if (indexById.has(node.id))
          issues.push({ path: `nodes[${i}].id`, message: `'${node.id}' appears twice` });
        indexById.set(node.id, i);
      }
    }
    if (issues.length > 0) throw new ValidationError(issues);

    this.size = n;
    this.nodes = nodes;
    this.ids = nodes.map((node) => node.id);
    this.indexById = indexById;
    this.weights = weights;
    this.weightSum = weights.memory + weights.cpu + weights.disk;
    this.fullestFirst = fullestFirst;
    this.status = new Uint8Array(n);
    this.capMem = new Float64Array(n);
    this.capCpu = new Float64Array(n);
    this.capDisk = new Float64Array(n);
    this.portFrom = new Int32Array(n);
    this.portTo = new Int32Array(n);
    this.rank = new Uint32Array(n);
    this.initialAllocMem = new Float64Array(n);
    this.initialAllocCpu = new Float64Array(n);
    this.initialAllocDisk = new Float64Array(n);
    this.initialFreePorts = new Int32Array(n);
    const basePorts: ReadonlySet<number>[] = new Array(n);
    let offline = 0;
    let draining = 0;
    const schedulable: number[] = [];
    for (let i = 0; i < n; i += 1) {
      const node = nodes[i]!;
      const status = node.status ?? "ONLINE";
      if (status === "OFFLINE") {
        this.status[i] = OFFLINE;
        offline += 1;
      } else if (status === "DRAINING" || node.drainRequested === true) {
        this.status[i] = DRAINING;
        draining += 1;
      } else schedulable.push(i);
      const overcommit = node.overcommit ?? 1;
      this.capMem[i] = node.capacity.memoryMb * overcommit;
      this.capCpu[i] = node.capacity.cpu * overcommit;
      this.capDisk[i] = node.capacity.diskMb;
      this.initialAllocMem[i] = node.allocated?.memoryMb ?? 0;
      this.initialAllocCpu[i] = node.allocated?.cpu ?? 0;
      this.initialAllocDisk[i] = node.allocated?.diskMb ?? 0;
      this.rank[i] = nodeRank(seed, node.id);
      const from = node.portRange?.from ?? 1;
      const to = node.portRange?.to ?? 0;
      this.portFrom[i] = from;
      this.portTo[i] = to;
      const reserved = node.reservedPorts;
      const used = node.usedPorts;
      let taken = NO_PORTS;
      if (
        (reserved !== undefined && reserved.length > 0) ||
        (used !== undefined && used.length > 0)
      )
        taken = new Set([...(reserved ?? []), ...(used ?? [])]);
      basePorts[i] = taken;
      let takenInRange = 0;
      for (const port of taken) if (port >= from && port <= to) takenInRange += 1;
      this.initialFreePorts[i] = Math.max(0, to - from + 1 - takenInRange);
    }
    this.offline = offline;
    this.draining = draining;
    this.basePorts = basePorts;
    this.marks = new Uint32Array(n);
    this.schedulable = Int32Array.from(schedulable);
    this.memBounds = capacityBounds(this.capMem, schedulable);
    this.cpuBounds = capacityBounds(this.capCpu, schedulable);
    this.diskBounds = capacityBounds(this.capDisk, schedulable);
    const same = (bounds: CapacityBounds, caps: Float64Array, weight: number) =>
      weight === 0 || schedulable.every((i) => caps[i] === bounds.max);
    this.uniform =
      same(this.memBounds, this.capMem, weights.memory) &&
      same(this.cpuBounds, this.capCpu, weights.cpu) &&
      same(this.diskBounds, this.capDisk, weights.disk);
    // A bucket's best possible score falls linearly with memory.x + cpu.y
    // (binpack) or rises with it (spread): one fixed visiting order.
    const grid = gridSize(schedulable.length);
    this.grid = grid;
    const order = Array.from({ length: grid * grid }, (_, b) => b);
    const weightOf = (b: number) =>
      weights.memory * Math.floor(b / grid) + weights.cpu * (b % grid);
    order.sort(
      (a, b) => (fullestFirst ? weightOf(a) - weightOf(b) : weightOf(b) - weightOf(a)) || a - b,
    );
    this.bucketOrder = Int32Array.from(order);
    this.bucketPosition = new Int32Array(order.length);
    for (let p = 0; p < order.length; p += 1) this.bucketPosition[order[p]!] = p;
  }

  /** Utilisation (0 empty .. 1 full) weighted over resources; a zero capacity counts as full. */
  utilisationKey(i: number, allocMem: number, allocCpu: number, allocDisk: number): number {
    const w = this.weights;
    let sum = 0;
    if (w.memory > 0) {
      const cap = this.capMem[i]!;
      sum += w.memory * (cap > 0 ? allocMem / cap : 1);
    }
    if (w.cpu > 0) {
      const cap = this.capCpu[i]!;
      sum += w.cpu * (cap > 0 ? allocCpu / cap : 1);
    }
    if (w.disk > 0) {
      const cap = this.capDisk[i]!;
      sum += w.disk * (cap > 0 ? allocDisk / cap : 1);
    }
    return sum / this.weightSum;
  }

  /** The grid cell of a node with these allocations. */
  bucketOf(i: number, allocMem: number, allocCpu: number): number {
    return (
      bucketCoordinate(this.capMem[i]!, allocMem, this.grid) * this.grid +
      bucketCoordinate(this.capCpu[i]!, allocCpu, this.grid)
    );
  }

  /** The interned values of `label` on every node (built once per label). */
  labelColumn(label: string): LabelColumn {
    let column = this.labelColumns.get(label);
    if (column === undefined) {
      const valueIds = new Int32Array(this.size);
      const values: string[] = [];
      const ids = new Map<string, number>();
      for (let i = 0; i < this.size; i += 1) {
        const value = labelValue(this.nodes[i]!, label);
        if (value === undefined) {
          valueIds[i] = -1;
          continue;
        }
        let id = ids.get(value);
        if (id === undefined) {
          id = values.length;
          values.push(value);
          ids.set(value, id);
        }
        valueIds[i] = id;
      }
      column = { valueIds, values };
      this.labelColumns.set(label, column);
    }
    return column;
  }

  /** Nodes per value of `label` (an inverted index, built once per label). */
  labelNodes(label: string): LabelNodes {
    let lists = this.labelNodeLists.get(label);
    if (lists === undefined) {
      const { valueIds, values } = this.labelColumn(label);
      const offsets = new Int32Array(values.length + 2);
      for (let i = 0; i < this.size; i += 1) offsets[valueIds[i]! + 2]! += 1;
      for (let slot = 1; slot < offsets.length; slot += 1) offsets[slot]! += offsets[slot - 1]!;
      const nodes = new Int32Array(this.size);
      const fill = offsets.slice(0, values.length + 1);
      for (let i = 0; i < this.size; i += 1) {
        const slot = valueIds[i]! + 1;
        nodes[fill[slot]!] = i;
        fill[slot]! += 1;
      }
      lists = { offsets, nodes };
      this.labelNodeLists.set(label, lists);
    }
    return lists;
  }

  /**
   * A fresh mark value: a search marks the nodes it has already evaluated in
   * `marks` without clearing the array first.
   */
  nextMark(): number {
    this.mark = this.mark >= 0xfffffffe ? 1 : this.mark + 1;
    if (this.mark === 1) this.marks.fill(0);
    return this.mark;
  }

  /**
   * Whether each distinct value of the constraint's label satisfies it, at
   * `[valueId + 1]` (slot 0: label absent). A regex or version test then runs
   * once per distinct value, never once per node.
   */
  matchTable(constraint: Constraint): Uint8Array {
    const key = constraintKey(constraint);
    let table = this.matchTables.get(key);
    if (table === undefined) {
      const column = this.labelColumn(constraint.label);
      const matches = constraintMatcher(constraint);
      table = new Uint8Array(column.values.length + 1);
      table[0] = matches(undefined) ? 1 : 0;
      for (let v = 0; v < column.values.length; v += 1)
        table[v + 1] = matches(column.values[v]) ? 1 : 0;
      if (this.matchTables.size >= MAX_CACHED_TABLES) this.matchTables.clear();
      this.matchTables.set(key, table);
    }
    return table;
  }

  /** 1 where the node offers `runtime`. */
  runtimeColumn(runtime: string): Uint8Array {
    let column = this.runtimeColumns.get(runtime);
    if (column === undefined) {
      column = new Uint8Array(this.size);
      for (let i = 0; i < this.size; i += 1)
        column[i] = this.nodes[i]!.runtimes?.includes(runtime) ? 1 : 0;
      if (this.runtimeColumns.size >= MAX_CACHED_TABLES) this.runtimeColumns.clear();
      this.runtimeColumns.set(runtime, column);
    }
    return column;
  }

  /** Instances of `template` per node, as the snapshot says. Callers must not write to it. */
  templateColumn(template: string): Int32Array {
    let column = this.templateColumns.get(template);
    if (column === undefined) {
      column = new Int32Array(this.size);
      for (let i = 0; i < this.size; i += 1)
        column[i] = this.nodes[i]!.templateCounts?.[template] ?? 0;
      if (this.templateColumns.size >= MAX_CACHED_TABLES) this.templateColumns.clear();
      this.templateColumns.set(template, column);
    }
    return column;
  }
}

/**
 * Grid coordinates are taken on free + CELL_SHIFT: a node that fits a request
 * of exactly k cells (within EPSILON) then always lands in cell k or above,
 * so the search can skip the cells below whole.
 */
export const CELL_SHIFT = 2 * EPSILON;

/** Grid coordinate of a free fraction: 0 (full or over-allocated) .. grid - 1 (empty). */
function bucketCoordinate(cap: number, alloc: number, grid: number): number {
  if (!(cap > 0)) return 0;
  const free = (cap - alloc + CELL_SHIFT) / cap;
  if (!(free > 0)) return 0;
  return Math.min(grid - 1, Math.floor(free * grid));
}

interface LabelCounts {
  readonly template: string;
  readonly column: LabelColumn;
  /** Instances of the template per label value. */
  readonly counts: Int32Array;
}

/**
 * What is allocated on each node. The base state of a scheduler is only read
 * (its lazily filled maps are caches); `fork()` gives a batch its own copy.
 */
export class ClusterState {
  readonly cluster: PreparedCluster;
  readonly allocMem: Float64Array;
  readonly allocCpu: Float64Array;
  readonly allocDisk: Float64Array;
  readonly freePorts: Int32Array;
  /** Every port in `[portFrom, cursor)` is taken: where the next dynamic port search starts. */
  readonly cursor: Int32Array;
  /** `utilisationKey` of each node. */
  readonly key: Float64Array;
  /** Schedulable nodes per grid cell, sorted by `compare`. */
  readonly buckets: number[][];
  /**
   * Bit p set when the bucket at `bucketOrder[p]` holds nodes: the search
   * jumps from one occupied cell to the next, 32 cells per word.
   */
  readonly occupied: Uint32Array;
  private readonly writable: boolean;
  private readonly portOverrides = new Map<number, Set<number>>();
  private readonly templateCounts = new Map<string, Int32Array>();
  private readonly labelCounts = new Map<string, LabelCounts>();
  /** Placements made in this fork, replayed into counts first asked for after them. */
  private readonly placed: { node: number; template: string }[] = [];

  private constructor(
    cluster: PreparedCluster,
    arrays: {
      allocMem: Float64Array;
      allocCpu: Float64Array;
      allocDisk: Float64Array;
      freePorts: Int32Array;
      cursor: Int32Array;
      key: Float64Array;
      buckets: number[][];
      occupied: Uint32Array;
    },
    writable: boolean,
  ) {
    this.cluster = cluster;
    this.allocMem = arrays.allocMem;
    this.allocCpu = arrays.allocCpu;
    this.allocDisk = arrays.allocDisk;
    this.freePorts = arrays.freePorts;
    this.cursor = arrays.cursor;
    this.key = arrays.key;
    this.buckets = arrays.buckets;
    this.occupied = arrays.occupied;
    this.writable = writable;
  }

  /** The read-only state of a prepared snapshot. */
  static initial(cluster: PreparedCluster): ClusterState {
    const key = new Float64Array(cluster.size);
    const buckets: number[][] = Array.from({ length: cluster.grid * cluster.grid }, () => []);
    for (const i of cluster.schedulable) {
      key[i] = cluster.utilisationKey(
        i,
        cluster.initialAllocMem[i]!,
        cluster.initialAllocCpu[i]!,
        cluster.initialAllocDisk[i]!,
      );
      buckets[cluster.bucketOf(i, cluster.initialAllocMem[i]!, cluster.initialAllocCpu[i]!)]!.push(
        i,
      );
    }
    const occupied = new Uint32Array(Math.ceil(buckets.length / 32));
    for (let b = 0; b < buckets.length; b += 1)
      if (buckets[b]!.length > 0) {
        const p = cluster.bucketPosition[b]!;
        occupied[p >>> 5] = occupied[p >>> 5]! | (1 << (p & 31));
      }
    const state = new ClusterState(
      cluster,
      {
        occupied,
        allocMem: cluster.initialAllocMem,
        allocCpu: cluster.initialAllocCpu,
        allocDisk: cluster.initialAllocDisk,
        freePorts: cluster.initialFreePorts,
        cursor: Int32Array.from(cluster.portFrom),
        key,
        buckets,
      },
      false,
    );
    const compare = (a: number, b: number) => state.compare(a, b);
    for (const bucket of buckets) if (bucket.length > 1) bucket.sort(compare);
    return state;
  }

  /** A writable copy (for a batch). */
  fork(): ClusterState {
    return new ClusterState(
      this.cluster,
      {
        allocMem: this.allocMem.slice(),
        allocCpu: this.allocCpu.slice(),
        allocDisk: this.allocDisk.slice(),
        freePorts: this.freePorts.slice(),
        cursor: this.cursor.slice(),
        key: this.key.slice(),
        buckets: this.buckets.map((bucket) => bucket.slice()),
        occupied: this.occupied.slice(),
      },
      true,
    );
  }

  /**
   * Order within a bucket: best possible fit first (binpack: most allocated;
   * spread: least), then the seeded rank, then the position in the snapshot.
   */
  compare(a: number, b: number): number {
    const ka = this.key[a]!;
    const kb = this.key[b]!;
    if (ka !== kb) return this.cluster.fullestFirst ? kb - ka : ka - kb;
    const rank = this.cluster.rank;
    if (rank[a] !== rank[b]) return rank[a]! - rank[b]!;
    return a - b;
  }

  private setOccupied(bucket: number, occupied: boolean): void {
    const p = this.cluster.bucketPosition[bucket]!;
    const bit = 1 << (p & 31);
    const word = this.occupied[p >>> 5]!;
    this.occupied[p >>> 5] = occupied ? word | bit : word & ~bit;
  }

  /** Where `node` is, or would be inserted, in a sorted bucket. */
  private positionIn(bucket: readonly number[], node: number): number {
    let low = 0;
    let high = bucket.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.compare(bucket[mid]!, node) < 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  freeMemory(node: number): number {
    return this.cluster.capMem[node]! - this.allocMem[node]!;
  }

  /** Is `port` held on `node` (reserved, used, or handed out earlier in this fork)? */
  isPortTaken(node: number, port: number): boolean {
    const override = this.portOverrides.get(node);
    return (override ?? this.cluster.basePorts[node]!).has(port);
  }

  /** Instances of `template` per node, including this fork's placements. Callers must not write to it. */
  templateColumn(template: string): Int32Array {
    if (!this.writable) return this.cluster.templateColumn(template);
    let column = this.templateCounts.get(template);
    if (column === undefined) {
      column = this.cluster.templateColumn(template).slice();
      for (const entry of this.placed)
        if (entry.template === template) column[entry.node] = column[entry.node]! + 1;
      this.templateCounts.set(template, column);
    }
    return column;
  }

  /** Instances of `template` per value of `label` (index: value id). Callers must not write to it. */
  labelCountsOf(template: string, label: string): Int32Array {
    const key = `${template}\u0000${label}`;
    let entry = this.labelCounts.get(key);
    if (entry === undefined) {
      const column = this.cluster.labelColumn(label);
      const perNode = this.templateColumn(template);
      const counts = new Int32Array(column.values.length);
      for (let i = 0; i < perNode.length; i += 1) {
        const value = column.valueIds[i]!;
        if (value >= 0) counts[value] = counts[value]! + perNode[i]!;
      }
      entry = { template, column, counts };
      if (!this.writable && this.labelCounts.size >= MAX_CACHED_TABLES) this.labelCounts.clear();
      this.labelCounts.set(key, entry);
    }
    return entry.counts;
  }

  /**
   * Chooses the ports of a placement on `node`: static ones as asked, dynamic
   * ones the lowest free in the node's range. The caller has checked they fit.
   */
  choosePorts(
    node: number,
    ports: readonly { name: string; port?: number }[],
    staticPorts: readonly number[],
  ): Record<string, number> {
    const result: Record<string, number> = {};
    const to = this.cluster.portTo[node]!;
    let cursor = this.cursor[node]!;
    // Advancing the cursor over taken ports is a cache update valid in any state:
    // ports are only ever added to a node within one state.
    while (cursor <= to && this.isPortTaken(node, cursor)) cursor += 1;
    this.cursor[node] = cursor;
    let next = cursor;
    for (const request of ports) {
      if (request.port !== undefined) {
        result[request.name] = request.port;
        continue;
      }
      while (next <= to && (this.isPortTaken(node, next) || staticPorts.includes(next))) next += 1;
      result[request.name] = next;
      next += 1;
    }
    return result;
  }

  /** Records a placement in this (forked) state: resources, ports, counts and the grid. */
  commit(
    node: number,
    need: { memoryMb: number; cpu: number; diskMb: number },
    ports: Readonly<Record<string, number>>,
    template: string | undefined,
  ): void {
    if (!this.writable) throw new Error("the base state of a scheduler is read-only; fork() it");
    const cluster = this.cluster;
    const from = cluster.bucketOf(node, this.allocMem[node]!, this.allocCpu[node]!);
    const oldBucket = this.buckets[from]!;
    oldBucket.splice(this.positionIn(oldBucket, node), 1);
    if (oldBucket.length === 0) this.setOccupied(from, false);
    this.allocMem[node] = this.allocMem[node]! + need.memoryMb;
    this.allocCpu[node] = this.allocCpu[node]! + need.cpu;
    this.allocDisk[node] = this.allocDisk[node]! + need.diskMb;
    this.key[node] = cluster.utilisationKey(
      node,
      this.allocMem[node]!,
      this.allocCpu[node]!,
      this.allocDisk[node]!,
    );
    const to = cluster.bucketOf(node, this.allocMem[node]!, this.allocCpu[node]!);
    const bucket = this.buckets[to]!;
    bucket.splice(this.positionIn(bucket, node), 0, node);
    if (bucket.length === 1) this.setOccupied(to, true);
    const values = Object.values(ports);
    if (values.length > 0) {
      let set = this.portOverrides.get(node);
      if (set === undefined) {
        set = new Set(cluster.basePorts[node]);
        this.portOverrides.set(node, set);
      }
      const from = cluster.portFrom[node]!;
      const to = cluster.portTo[node]!;
      for (const port of values) {
        if (set.has(port)) continue;
        set.add(port);
        if (port >= from && port <= to) this.freePorts[node] = this.freePorts[node]! - 1;
      }
    }
    if (template !== undefined) {
      this.placed.push({ node, template });
      const column = this.templateCounts.get(template);
      if (column !== undefined) column[node] = column[node]! + 1;
      for (const entry of this.labelCounts.values()) {
        if (entry.template !== template) continue;
        const value = entry.column.valueIds[node]!;
        if (value >= 0) entry.counts[value] = entry.counts[value]! + 1;
      }
    }
  }
}
