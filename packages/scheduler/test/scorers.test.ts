import { OrchestratorError } from "@orchestrator/core";
import { describe, expect, it } from "vitest";
import { createScheduler, place, type SchedulerScorer } from "../src/index.js";
import { cluster } from "../src/testing/index.js";
import { node, placedOn } from "./helpers.js";

const used = (memoryMb: number, cpu: number) => ({ allocated: { memoryMb, cpu, diskMb: 0 } });

describe("binpack (default)", () => {
  it("prefers the node that ends up fullest, memory and CPU weighed alike", () => {
    const nodes = [node("empty"), node("half", used(4096, 2)), node("memory-full", used(6144, 0))];
    const result = place({ resources: { memoryMb: 1024, cpu: 1 } }, nodes);
    // half: (5120/8192 + 3/4)/2 = 0.6875; memory-full: (7168/8192 + 1/4)/2 = 0.5625
    expect(placedOn(result)).toBe("half");
    expect(result.placed && result.score).toBeCloseTo(0.6875, 12);
  });

  it("can weigh memory alone", () => {
    const nodes = [node("half", used(4096, 2)), node("memory-full", used(6144, 0))];
    const result = place({ resources: { memoryMb: 1024, cpu: 1 } }, nodes, {
      resourceWeights: { memory: 1, cpu: 0 },
    });
    expect(placedOn(result)).toBe("memory-full");
  });

  it("fills one node before the next in a batch", () => {
    const nodes = cluster({ nodes: 4, memory: 4096, cpu: 4 });
    const requests = Array.from({ length: 6 }, () => ({ resources: { memoryMb: 1024, cpu: 1 } }));
    const ids = createScheduler(nodes).placeBatch(requests).map(placedOn);
    expect(new Set(ids.slice(0, 4)).size).toBe(1);
    expect(ids[4]).toBe(ids[5]);
    expect(ids[4]).not.toBe(ids[0]);
  });
});

describe("spread strategy", () => {
  it("prefers the least allocated node", () => {
    const nodes = [node("half", used(4096, 2)), node("empty"), node("quarter", used(2048, 1))];
    const result = place({ resources: { memoryMb: 1024, cpu: 1 } }, nodes, { strategy: "spread" });
    expect(placedOn(result)).toBe("empty");
    expect(result.explanation.winner?.components[0]?.scorer).toBe("spread");
  });

  it("spreads a batch over every node before doubling up", () => {
    const nodes = cluster({ nodes: 5 });
    const requests = Array.from({ length: 10 }, () => ({ resources: { memoryMb: 1024, cpu: 1 } }));
    const ids = createScheduler(nodes, { strategy: "spread" }).placeBatch(requests).map(placedOn);
    expect(new Set(ids.slice(0, 5)).size).toBe(5);
    expect(new Set(ids.slice(5)).size).toBe(5);
  });
});

describe("affinity", () => {
  const nodes = [
    node("fuller", { ...used(4096, 2), labels: { zone: "a" } }),
    node("empty", { labels: { zone: "b" } }),
  ];
  const request = { resources: { memoryMb: 1024, cpu: 1 } };

  it("moves a placement toward matching nodes, in proportion to its weight", () => {
    expect(placedOn(place(request, nodes))).toBe("fuller");
    // binpack: fuller 0.6875, empty 0.1875. Half the difference is 0.25 in affinity terms.
    const weak = {
      ...request,
      affinities: [{ label: "zone", op: "equals" as const, value: "b", weight: 40 }],
    };
    expect(placedOn(place(weak, nodes))).toBe("fuller");
    const strong = {
      ...request,
      affinities: [{ label: "zone", op: "equals" as const, value: "b", weight: 60 }],
    };
    const result = place(strong, nodes);
    expect(placedOn(result)).toBe("empty");
    expect(result.placed && result.explanation.winner?.components).toEqual([
      { scorer: "binpack", score: 0.1875, weight: 1 },
      { scorer: "affinity", score: 0.6, weight: 1 },
    ]);
    expect(result.placed && result.score).toBeCloseTo((0.1875 + 0.6) / 2, 12);
  });

  it("pushes away with a negative weight", () => {
    const avoid = {
      ...request,
      affinities: [{ label: "zone", op: "equals" as const, value: "a", weight: -60 }],
    };
    expect(placedOn(place(avoid, nodes))).toBe("empty");
  });

  it("keeps the combined affinity within -1..1 when weights add up past 100", () => {
    const many = {
      ...request,
      affinities: [
        { label: "zone", op: "equals" as const, value: "b", weight: 100 },
        { label: "zone", op: "not-equals" as const, value: "a", weight: 100 },
      ],
    };
    const result = place(many, nodes);
    expect(placedOn(result)).toBe("empty");
    expect(result.placed && result.explanation.winner?.components[1]?.score).toBe(1);
  });

  it("finds a rare preferred node anywhere in a large cluster", () => {
    const big = cluster({
      nodes: 3000,
      fill: 0.4,
      labels: { gpu: (i) => (i === 2718 ? "yes" : undefined) },
    });
    const wanted = {
      resources: { memoryMb: 512 },
      affinities: [{ label: "gpu", op: "exists" as const, weight: 90 }],
    };
    expect(placedOn(place(wanted, big))).toBe("node-2718");
  });
});

describe("anti-affinity weight", () => {
  it("prefers nodes running fewer instances of the template", () => {
    const nodes = [
      node("busy", { ...used(4096, 2), templateCounts: { mc: 3 } }),
      node("quiet", { ...used(2048, 1), templateCounts: { mc: 0 } }),
    ];
    const request = { templateName: "mc", resources: { memoryMb: 1024, cpu: 1 } };
    expect(placedOn(place(request, nodes))).toBe("busy");
    const apart = { ...request, antiAffinity: { weight: 100 } };
    const result = place(apart, nodes);
    expect(placedOn(result)).toBe("quiet");
    expect(result.placed && result.explanation.winner?.components[1]).toEqual({
      scorer: "anti-affinity",
      score: 1,
      weight: 1,
    });
  });
});

describe("label spread", () => {
  it("prefers label values holding fewer instances of the template", () => {
    const nodes = [
      node("eu", { ...used(4096, 2), labels: { region: "eu" }, templateCounts: { mc: 4 } }),
      node("us", { labels: { region: "us" } }),
    ];
    const request = { templateName: "mc", resources: { memoryMb: 1024, cpu: 1 } };
    expect(placedOn(place(request, nodes))).toBe("eu");
    const spread = { ...request, spread: [{ label: "region", weight: 100 }] };
    expect(placedOn(place(spread, nodes))).toBe("us");
  });

  it("spreads a batch evenly across a label", () => {
    const nodes = cluster({ nodes: 30, labels: { region: ["eu", "us", "ap"] } });
    const request = {
      templateName: "mc",
      resources: { memoryMb: 1024, cpu: 1 },
      spread: [{ label: "region", weight: 100 }],
    };
    const results = createScheduler(nodes).placeBatch(Array.from({ length: 9 }, () => request));
    const region = (id: string) => nodes.find((n) => n.id === id)?.labels?.region;
    const counts = new Map<string, number>();
    for (const result of results) {
      const value = region(placedOn(result))!;
      counts.set(value, (counts.get(value) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ eu: 3, us: 3, ap: 3 });
  });
});

describe("custom scorers and weights", () => {
  const nodes = [node("a", used(4096, 2)), node("b", { labels: { ssd: "yes" } })];
  const request = { resources: { memoryMb: 1024, cpu: 1 } };
  const ssd: SchedulerScorer = {
    name: "ssd",
    weight: 3,
    score: (view) => (view.node.labels?.ssd === "yes" ? 1 : null),
  };

  it("averages custom scores in with their weights, and skips nodes they abstain on", () => {
    const result = place(request, nodes, { scorers: [ssd] });
    expect(placedOn(result)).toBe("b");
    expect(result.placed && result.explanation.winner?.components).toEqual([
      { scorer: "binpack", score: 0.1875, weight: 1 },
      { scorer: "ssd", score: 1, weight: 3 },
    ]);
    expect(result.placed && result.score).toBeCloseTo((0.1875 + 3) / 4, 12);
  });

  it("turns a built-in scorer off with weight 0", () => {
    const result = place(request, nodes, { weights: { resources: 0 }, scorers: [ssd] });
    expect(result.placed && result.explanation.winner?.components.map((c) => c.scorer)).toEqual([
      "ssd",
    ]);
  });

  it("refuses a scorer that returns something other than a number", () => {
    const broken: SchedulerScorer = { name: "broken", score: () => Number.NaN };
    const error = (() => {
      try {
        place(request, nodes, { scorers: [broken] });
      } catch (caught) {
        return caught;
      }
    })();
    expect(OrchestratorError.hasCode(error, "INTERNAL")).toBe(true);
    expect((error as Error).message).toContain("scorer 'broken' returned NaN");
  });
});

describe("tie-breaking", () => {
  const nodes = cluster({ nodes: 12 });
  const request = { resources: { memoryMb: 1024, cpu: 1 } };

  it("is a seeded shuffle: the same seed always picks the same node, other seeds others", () => {
    const picks = new Set<string>();
    for (let seed = 0; seed < 20; seed += 1) {
      const first = placedOn(place(request, nodes, { seed }));
      expect(placedOn(place(request, structuredClone(nodes), { seed }))).toBe(first);
      picks.add(first);
    }
    expect(picks.size).toBeGreaterThan(4);
    expect(placedOn(place(request, nodes, { seed: "blue" }))).toBe(
      placedOn(place(request, nodes, { seed: "blue" })),
    );
  });

  it("does not depend on the order of the nodes in the snapshot", () => {
    const reversed = [...nodes].reverse();
    for (const seed of [1, 2, 3])
      expect(placedOn(place(request, reversed, { seed }))).toBe(
        placedOn(place(request, nodes, { seed })),
      );
  });
});
