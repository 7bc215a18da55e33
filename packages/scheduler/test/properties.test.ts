import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EPSILON, gridSize } from "../src/cluster-state.js";
import {
  applyPlacement,
  createScheduler,
  type NodeSnapshot,
  type PlacementRequest,
  type PlacementResult,
  type SchedulerOptions,
} from "../src/index.js";
import { cluster } from "../src/testing/index.js";
import {
  accountedNodes,
  clusterArbitrary,
  deepFreeze,
  holds,
  requestArbitrary,
} from "./arbitraries.js";

// SCHEDULER_PROPERTY_SCALE=20 runs every property twenty times longer (a deep check).
const SCALE = Math.max(1, Number(process.env.SCHEDULER_PROPERTY_SCALE ?? 1));
const runs = (numRuns: number) => ({ numRuns: Math.round(numRuns * SCALE) });
const RUNS = runs(300);
const optionsArbitrary: fc.Arbitrary<SchedulerOptions> = fc.record({
  strategy: fc.constantFrom("binpack" as const, "spread" as const),
  seed: fc.integer({ min: 0, max: 1000 }),
});

/** Checks every hard rule for a batch's placements, replaying them on a model of the cluster. */
function checkBatch(
  nodes: readonly NodeSnapshot[],
  requests: readonly PlacementRequest[],
  results: readonly PlacementResult[],
): void {
  const model = new Map(
    nodes.map((node) => [
      node.id,
      {
        node,
        memory: node.allocated?.memoryMb ?? 0,
        cpu: node.allocated?.cpu ?? 0,
        disk: node.allocated?.diskMb ?? 0,
        ports: new Set([...(node.usedPorts ?? []), ...(node.reservedPorts ?? [])]),
        instances: node.templateCounts?.mc ?? 0,
      },
    ]),
  );
  const perRegion = new Map<string, number>();
  for (const entry of model.values()) {
    const region = entry.node.labels?.region;
    if (region !== undefined) perRegion.set(region, (perRegion.get(region) ?? 0) + entry.instances);
  }
  results.forEach((result, k) => {
    const request = requests[k]!;
    expect(accountedNodes(result)).toBe(nodes.length);
    if (!result.placed) return;
    const entry = model.get(result.nodeId)!;
    const { node } = entry;
    const overcommit = node.overcommit ?? 1;
    expect(node.status ?? "ONLINE").toBe("ONLINE");
    expect(node.drainRequested ?? false).toBe(false);
    if (request.runtime !== undefined) expect(node.runtimes).toContain(request.runtime);
    for (const constraint of request.constraints ?? [])
      expect(holds(constraint, node.labels ?? {}), JSON.stringify(constraint)).toBe(true);
    entry.memory += request.resources.memoryMb;
    entry.cpu += request.resources.cpu ?? 0;
    entry.disk += request.resources.diskMb ?? 0;
    // No placement ever exceeds capacity (with the node's overcommit factor).
    expect(entry.memory).toBeLessThanOrEqual(node.capacity.memoryMb * overcommit + 1e-6);
    expect(entry.cpu).toBeLessThanOrEqual(node.capacity.cpu * overcommit + 1e-6);
    expect(entry.disk).toBeLessThanOrEqual(node.capacity.diskMb + 1e-6);
    // Every named port is handed out, never twice, dynamic ones from the range.
    expect(Object.keys(result.ports).sort()).toEqual(
      (request.ports ?? []).map((p) => p.name).sort(),
    );
    for (const port of request.ports ?? []) {
      const given = result.ports[port.name]!;
      if (port.port !== undefined) expect(given).toBe(port.port);
      else {
        expect(given).toBeGreaterThanOrEqual(node.portRange!.from);
        expect(given).toBeLessThanOrEqual(node.portRange!.to);
      }
      expect(entry.ports.has(given), `port ${given} on ${node.id} handed out twice`).toBe(false);
      entry.ports.add(given);
    }
    entry.instances += 1;
    const max = request.antiAffinity?.maxPerNode;
    if (max !== undefined) expect(entry.instances).toBeLessThanOrEqual(max);
    const region = node.labels?.region;
    if (region !== undefined) {
      perRegion.set(region, (perRegion.get(region) ?? 0) + 1);
      const cap = request.spread?.[0]?.maxPerValue;
      if (cap !== undefined) expect(perRegion.get(region)!).toBeLessThanOrEqual(cap);
    }
  });
}

describe("placement properties", () => {
  it("never exceeds capacity, never hands out a port twice, and always honours constraints", () => {
    fc.assert(
      fc.property(
        clusterArbitrary,
        fc.array(requestArbitrary, { maxLength: 12 }),
        optionsArbitrary,
        (nodes, requests, options) => {
          const results = createScheduler(nodes, options).placeBatch(requests);
          checkBatch(nodes, requests, results);
        },
      ),
      RUNS,
    );
  });

  it("gives the same result for the same seed", () => {
    fc.assert(
      fc.property(
        clusterArbitrary,
        fc.array(requestArbitrary, { maxLength: 8 }),
        optionsArbitrary,
        (nodes, requests, options) => {
          const first = createScheduler(nodes, options).placeBatch(requests);
          const second = createScheduler(structuredClone(nodes), options).placeBatch(requests);
          expect(second).toEqual(first);
        },
      ),
      RUNS,
    );
  });

  it("places a batch exactly like a sequence of single placements", () => {
    fc.assert(
      fc.property(
        clusterArbitrary,
        fc.array(requestArbitrary, { maxLength: 8 }),
        optionsArbitrary,
        (nodes, requests, options) => {
          const batch = createScheduler(nodes, options).placeBatch(requests);
          let snapshot: readonly NodeSnapshot[] = nodes;
          const singles: PlacementResult[] = [];
          for (const request of requests) {
            const result = createScheduler(snapshot, options).place(request);
            singles.push(result);
            if (result.placed) snapshot = applyPlacement(snapshot, request, result);
          }
          expect(batch).toEqual(singles);
        },
      ),
      RUNS,
    );
  });

  it("finds the exhaustive optimum (same node, same score) with its indexed search", () => {
    fc.assert(
      fc.property(
        clusterArbitrary,
        fc.array(requestArbitrary, { minLength: 1, maxLength: 8 }),
        optionsArbitrary,
        (nodes, requests, options) => {
          const fast = createScheduler(nodes, options).placeBatch(requests);
          const full = createScheduler(nodes, { ...options, exhaustive: true }).placeBatch(
            requests,
          );
          fast.forEach((result, k) => {
            const optimum = full[k]!;
            expect(result.placed).toBe(optimum.placed);
            if (result.placed && optimum.placed) {
              expect(result.score).toBeCloseTo(optimum.score, 9);
              expect(result.nodeId).toBe(optimum.nodeId);
              expect(result.ports).toEqual(optimum.ports);
            } else expect(result.explanation).toEqual(optimum.explanation);
          });
        },
      ),
      RUNS,
    );
  });

  it("finds the exhaustive optimum on larger clusters, where the index prunes most nodes", () => {
    const large = fc
      .record({
        nodes: fc.integer({ min: 50, max: 400 }),
        fill: fc.double({ min: 0, max: 0.6, noNaN: true }),
        seed: fc.integer({ min: 1, max: 1_000_000 }),
        mixed: fc.boolean(),
        counts: fc.boolean(),
        jitter: fc.boolean(),
      })
      .map(({ nodes, fill, seed, mixed, counts, jitter }) =>
        cluster({
          nodes,
          fill,
          seed,
          offline: nodes >> 5,
          labels: {
            region: ["eu", "us", "ap"],
            zone: ["a", "b", "a", "b", "c"],
            version: ["1.2.0", "1.10.0", "2.0.0"],
            gpu: (i) => (i % 37 === 0 ? "yes" : undefined),
          },
        }).map((node, i) => ({
          ...node,
          ...(mixed && i % 3 === 0
            ? { capacity: { memoryMb: 65536, cpu: 24, diskMb: 1_000_000 }, overcommit: 1.25 }
            : {}),
          ...(counts ? { templateCounts: { mc: i % 4 } } : {}),
          // Allocations off the 256 MiB / quarter-core steps, onto cell edges and between them.
          ...(jitter && node.allocated
            ? {
                allocated: {
                  memoryMb: Math.max(0, node.allocated.memoryMb - ((i * 37) % 300)),
                  cpu: Math.max(0, node.allocated.cpu - ((i * 7) % 10) / 10),
                  diskMb: 0,
                },
              }
            : {}),
        })),
      );
    const request = fc
      .record({
        memory: fc.oneof(
          fc.integer({ min: 1, max: 32 }).map((k) => k * 512),
          fc.integer({ min: 1, max: 16_000 }),
        ),
        cpu: fc.integer({ min: 0, max: 40 }),
        gpu: fc.integer({ min: -100, max: 100 }),
        zone: fc.integer({ min: -100, max: 100 }),
        anti: fc.integer({ min: 0, max: 100 }),
        spread: fc.boolean(),
        region: fc.boolean(),
      })
      .map(
        (r): PlacementRequest => ({
          templateName: "mc",
          resources: { memoryMb: r.memory, cpu: r.cpu / 10 },
          ports: [{ name: "game" }],
          constraints: r.region ? [{ label: "region", op: "not-equals", value: "ap" }] : [],
          affinities: [
            { label: "gpu", op: "exists", weight: r.gpu },
            { label: "zone", op: "equals", value: "b", weight: r.zone },
          ],
          antiAffinity: { maxPerNode: 5, weight: r.anti },
          ...(r.spread ? { spread: [{ label: "region", weight: 40 }] } : {}),
        }),
      );
    // Memory-only and CPU-only weights make a fit at the edge of a grid cell decisive.
    const largeOptions = fc.record({
      strategy: fc.constantFrom("binpack" as const, "spread" as const),
      seed: fc.integer({ min: 0, max: 1000 }),
      resourceWeights: fc.constantFrom(
        { memory: 1, cpu: 1 },
        { memory: 1, cpu: 0 },
        { memory: 0, cpu: 1 },
        { memory: 2, cpu: 1, disk: 1 },
      ),
    });
    fc.assert(
      fc.property(
        large,
        fc.array(request, { minLength: 1, maxLength: 30 }),
        largeOptions,
        (nodes, requests, options) => {
          const fast = createScheduler(nodes, options).placeBatch(requests);
          const full = createScheduler(nodes, { ...options, exhaustive: true }).placeBatch(
            requests,
          );
          fast.forEach((result, k) => {
            const optimum = full[k]!;
            expect(result.placed).toBe(optimum.placed);
            if (result.placed && optimum.placed) {
              expect(result.score).toBeCloseTo(optimum.score, 9);
              expect(result.nodeId).toBe(optimum.nodeId);
            }
          });
        },
      ),
      runs(60),
    );
  });

  it("finds the exhaustive optimum when free memory and requests sit on grid cell edges", () => {
    // Free amounts and requests exactly at, and a hair either side of, the
    // edges of the index's cells: where skipping a cell whole is most delicate.
    const OFFSETS = [
      -100,
      -1,
      -0.25,
      -EPSILON,
      -EPSILON / 2,
      0,
      EPSILON / 2,
      EPSILON,
      0.25,
      1,
      100,
    ];
    const edgeCase = fc.record({
      nodes: fc.integer({ min: 64, max: 300 }),
      frees: fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.constantFrom(...OFFSETS)), {
        minLength: 64,
        maxLength: 64,
      }),
      requests: fc.array(fc.tuple(fc.integer({ min: 1, max: 40 }), fc.constantFrom(...OFFSETS)), {
        minLength: 1,
        maxLength: 25,
      }),
      strategy: fc.constantFrom("binpack" as const, "spread" as const),
      cpuWeight: fc.constantFrom(0, 1),
    });
    fc.assert(
      fc.property(edgeCase, ({ nodes: size, frees, requests, strategy, cpuWeight }) => {
        const capacity = 32768;
        const cell = capacity / gridSize(size);
        const nodes = cluster({ nodes: size, memory: capacity }).map((node, i) => {
          const [edge, offset] = frees[i % frees.length]!;
          const free = Math.min(capacity, Math.max(0, edge * cell + offset));
          return { ...node, allocated: { memoryMb: capacity - free, cpu: (i % 5) / 2, diskMb: 0 } };
        });
        const options = { strategy, resourceWeights: { memory: 1, cpu: cpuWeight } };
        const fast = createScheduler(nodes, options);
        const full = createScheduler(nodes, { ...options, exhaustive: true });
        for (const [edge, offset] of requests) {
          const request = { resources: { memoryMb: Math.max(0, edge * cell + offset), cpu: 0.5 } };
          const a = fast.place(request);
          const b = full.place(request);
          expect(a.placed).toBe(b.placed);
          if (a.placed && b.placed) expect(a.nodeId).toBe(b.nodeId);
        }
      }),
      runs(300),
    );
  });

  it("never modifies the snapshot it is given", () => {
    fc.assert(
      fc.property(
        clusterArbitrary,
        fc.array(requestArbitrary, { maxLength: 6 }),
        optionsArbitrary,
        (nodes, requests, options) => {
          const before = structuredClone(nodes);
          const frozen = deepFreeze(nodes);
          const scheduler = createScheduler(frozen, options);
          for (const request of requests) scheduler.place(request);
          scheduler.placeBatch(requests);
          const results = scheduler.placeBatch(requests);
          results.forEach((result, k) => {
            if (result.placed) applyPlacement(frozen, requests[k]!, result);
          });
          expect(frozen).toEqual(before);
        },
      ),
      runs(60),
    );
  });
});
