/**
 * fast-check generators for small, adversarial clusters and requests (few
 * nodes, narrow port ranges, tight capacities), plus reference checks written
 * independently of the implementation.
 */
import fc from "fast-check";
import type { Constraint, NodeSnapshot, PlacementRequest, PlacementResult } from "../src/index.js";

export const REGIONS = ["eu", "us", "ap"] as const;
/** Ascending semver order; "x" is not a version. */
export const VERSIONS = ["1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0", "x"] as const;

const nodeArbitrary = fc
  .record({
    status: fc.constantFrom(
      "ONLINE",
      "ONLINE",
      "ONLINE",
      "ONLINE",
      "ONLINE",
      "DRAINING",
      "OFFLINE",
    ),
    drainRequested: fc.constantFrom(false, false, false, false, false, false, false, true),
    // Any MiB and tenths of cores: values that do not line up with grid cells.
    memory: fc.integer({ min: 0, max: 12_288 }),
    memoryUsed: fc.double({ min: 0, max: 1, noNaN: true }),
    cpu: fc.integer({ min: 0, max: 80 }),
    cpuUsed: fc.double({ min: 0, max: 1, noNaN: true }),
    disk: fc.integer({ min: 0, max: 8 }),
    overcommit: fc.constantFrom(1, 1, 1, 1.5),
    region: fc.option(fc.constantFrom(...REGIONS), { nil: undefined }),
    zone: fc.option(fc.constantFrom("a", "b"), { nil: undefined }),
    version: fc.option(fc.constantFrom(...VERSIONS), { nil: undefined }),
    portFrom: fc.integer({ min: 30000, max: 30006 }),
    portCount: fc.constantFrom(0, 2, 3, 4, 6, 8),
    used: fc.subarray([30000, 30002, 30004, 30007, 30010]),
    reserved: fc.subarray([30001, 30005, 30010]),
    runtimes: fc.subarray(["process", "docker"], { minLength: 1 }),
    instances: fc.constantFrom(0, 0, 1, 2, 3),
  })
  .map((n): Omit<NodeSnapshot, "id"> => {
    const labels: Record<string, string> = {};
    if (n.region !== undefined) labels.region = n.region;
    if (n.zone !== undefined) labels.zone = n.zone;
    if (n.version !== undefined) labels.version = n.version;
    const memoryMb = n.memory;
    const cpu = n.cpu / 10;
    const diskMb = n.disk * 1024;
    return {
      status: n.status,
      drainRequested: n.drainRequested,
      labels,
      capacity: { memoryMb, cpu, diskMb },
      // Allocations stay within the effective capacity, in the same steps requests use.
      allocated: {
        memoryMb: Math.floor(n.memoryUsed * memoryMb * n.overcommit),
        cpu: Math.floor(n.cpuUsed * cpu * n.overcommit * 10) / 10,
        diskMb: 0,
      },
      overcommit: n.overcommit,
      ...(n.portCount === 0
        ? {}
        : { portRange: { from: n.portFrom, to: n.portFrom + n.portCount - 1 } }),
      usedPorts: n.used,
      reservedPorts: n.reserved,
      runtimes: n.runtimes,
      templateCounts: { mc: n.instances },
    };
  });

export const clusterArbitrary = fc
  .array(nodeArbitrary, { minLength: 0, maxLength: 30 })
  .map((nodes) => nodes.map((node, i): NodeSnapshot => ({ id: `n${i}`, ...node })));

const constraintArbitrary: fc.Arbitrary<Constraint> = fc.oneof(
  fc
    .constantFrom(...REGIONS)
    .map((value): Constraint => ({ label: "region", op: "equals", value })),
  fc
    .constantFrom(...REGIONS)
    .map((value): Constraint => ({ label: "region", op: "not-equals", value })),
  fc
    .subarray([...REGIONS], { minLength: 1 })
    .map((values): Constraint => ({ label: "region", op: "in", values })),
  fc
    .subarray([...REGIONS], { minLength: 1 })
    .map((values): Constraint => ({ label: "region", op: "not-in", values })),
  fc.constant<Constraint>({ label: "region", op: "regex", pattern: "^(eu|ap)$" }),
  fc.constant<Constraint>({ label: "zone", op: "exists" }),
  fc.constant<Constraint>({ label: "zone", op: "not-exists" }),
  fc
    .record({
      comparator: fc.constantFrom("=", "!=", ">", ">=", "<", "<=" as const),
      value: fc.constantFrom("1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0"),
    })
    .map((c): Constraint => ({ label: "version", op: "semver", ...c })),
);

export const requestArbitrary: fc.Arbitrary<PlacementRequest> = fc
  .record({
    memory: fc.oneof(
      fc.integer({ min: 0, max: 8 }).map((k) => k * 256),
      fc.integer({ min: 0, max: 2500 }),
    ),
    cpu: fc.integer({ min: 0, max: 15 }),
    disk: fc.integer({ min: 0, max: 2 }),
    ports: fc.array(fc.option(fc.integer({ min: 29999, max: 30011 }), { nil: undefined }), {
      maxLength: 3,
    }),
    runtime: fc.constantFrom(undefined, undefined, undefined, "process", "docker", "gpu"),
    constraints: fc.oneof(
      fc.constant([]),
      fc.array(constraintArbitrary, { maxLength: 1 }),
      fc.array(constraintArbitrary, { maxLength: 2 }),
    ),
    affinities: fc.array(
      fc
        .tuple(constraintArbitrary, fc.integer({ min: -100, max: 100 }))
        .map(([c, weight]) => ({ ...c, weight })),
      { maxLength: 2 },
    ),
    maxPerNode: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
    antiWeight: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
    spread: fc.option(
      fc.record({
        weight: fc.integer({ min: 1, max: 100 }),
        maxPerValue: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
      }),
      { nil: undefined },
    ),
  })
  .map((r): PlacementRequest => {
    const seen = new Set<number>();
    const ports = r.ports.map((port, i) => {
      if (port === undefined || seen.has(port)) return { name: `p${i}` };
      seen.add(port);
      return { name: `p${i}`, port };
    });
    return {
      templateName: "mc",
      resources: { memoryMb: r.memory, cpu: r.cpu / 10, diskMb: r.disk * 512 },
      ports,
      ...(r.runtime === undefined ? {} : { runtime: r.runtime }),
      constraints: r.constraints,
      affinities: r.affinities,
      ...(r.maxPerNode === undefined && r.antiWeight === undefined
        ? {}
        : {
            antiAffinity: {
              ...(r.maxPerNode === undefined ? {} : { maxPerNode: r.maxPerNode }),
              ...(r.antiWeight === undefined ? {} : { weight: r.antiWeight }),
            },
          }),
      ...(r.spread === undefined
        ? {}
        : {
            spread: [
              {
                label: "region",
                weight: r.spread.weight,
                ...(r.spread.maxPerValue === undefined
                  ? {}
                  : { maxPerValue: r.spread.maxPerValue }),
              },
            ],
          }),
    };
  });

/** Reference semantics of a constraint, independent of the implementation. */
export function holds(constraint: Constraint, labels: Readonly<Record<string, string>>): boolean {
  const value = Object.hasOwn(labels, constraint.label) ? labels[constraint.label] : undefined;
  switch (constraint.op) {
    case "equals":
      return value === constraint.value;
    case "not-equals":
      return value !== constraint.value;
    case "in":
      return value !== undefined && constraint.values.includes(value);
    case "not-in":
      return value === undefined || !constraint.values.includes(value);
    case "regex":
      return value !== undefined && new RegExp(constraint.pattern).test(value);
    case "exists":
      return value !== undefined;
    case "not-exists":
      return value === undefined;
    case "semver": {
      const order = VERSIONS.slice(0, 4) as readonly string[];
      if (value === undefined || !order.includes(value)) return false;
      const a = order.indexOf(value);
      const b = order.indexOf(constraint.value);
      switch (constraint.comparator) {
        case "=":
          return a === b;
        case "!=":
          return a !== b;
        case ">":
          return a > b;
        case ">=":
          return a >= b;
        case "<":
          return a < b;
        case "<=":
          return a <= b;
      }
    }
  }
}

/** Freezes `value` and everything reachable from it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** Sum of the `count`s in an explanation plus the feasible and not-evaluated nodes. */
export function accountedNodes(result: PlacementResult): number {
  const e = result.explanation;
  return e.filtered.reduce((sum, f) => sum + f.count, 0) + e.feasible + e.notEvaluated;
}
