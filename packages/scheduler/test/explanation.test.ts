import { describe, expect, it } from "vitest";
import { createScheduler, place } from "../src/index.js";
import { cluster } from "../src/testing/index.js";
import { accountedNodes } from "./arbitraries.js";
import { node } from "./helpers.js";

const mixed = [
  node("full-1", { allocated: { memoryMb: 5120, cpu: 0, diskMb: 0 } }),
  node("full-2", { allocated: { memoryMb: 6144, cpu: 0, diskMb: 0 } }),
  node("full-3", { allocated: { memoryMb: 8192, cpu: 0, diskMb: 0 } }),
  node("us-1", { labels: { region: "us" } }),
  node("us-2", { labels: { region: "us" } }),
  node("eu-busy", { labels: { region: "eu" }, allocated: { memoryMb: 0, cpu: 3.5, diskMb: 0 } }),
  node("eu-ports", { labels: { region: "eu" }, usedPorts: [25565] }),
  node("gone", { status: "OFFLINE" }),
  node("leaving", { status: "DRAINING" }),
];
const request = {
  id: "req-7",
  resources: { memoryMb: 4096, cpu: 1 },
  ports: [{ name: "game", port: 25565 }],
  constraints: [{ label: "region", op: "equals" as const, value: "eu" }],
};

describe("explanations", () => {
  it("count, in words, why every node was turned down when nothing fits", () => {
    const result = place(request, mixed);
    expect(result.placed).toBe(false);
    if (result.placed) return;
    expect(result.requestId).toBe("req-7");
    expect(result.explanation.lines).toEqual([
      "no node fits (9 nodes evaluated)",
      "1 node: offline",
      "1 node: draining",
      "3 nodes: insufficient memory (need 4096 MB, best has 3072 MB)",
      "1 node: insufficient CPU (need 1 core, best has 0.5)",
      "2 nodes: label region=eu required",
      "1 node: port 25565 already in use",
    ]);
    expect(result.unplaced).toBe(
      "no node fits: 1 node: offline; 1 node: draining; 3 nodes: insufficient memory (need 4096 MB, best has 3072 MB); " +
        "1 node: insufficient CPU (need 1 core, best has 0.5); 2 nodes: label region=eu required; 1 node: port 25565 already in use",
    );
    expect(result.explanation.filtered.map((f) => f.filter)).toEqual([
      "status",
      "draining",
      "memory",
      "cpu",
      "constraint",
      "ports",
    ]);
    expect(result.explanation).toMatchObject({
      nodes: 9,
      evaluated: 9,
      feasible: 0,
      notEvaluated: 0,
      winner: null,
    });
  });

  it("give the winner's score breakdown and what was looked at", () => {
    const nodes = [...mixed, node("eu-free", { labels: { region: "eu" } })];
    const result = createScheduler(nodes, { exhaustive: true }).place(request);
    expect(result.placed).toBe(true);
    if (!result.placed) return;
    expect(result.nodeId).toBe("eu-free");
    expect(result.explanation.winner).toEqual({
      nodeId: "eu-free",
      total: 0.375,
      components: [{ scorer: "binpack", score: 0.375, weight: 1 }],
    });
    expect(result.explanation.lines).toEqual([
      "placed on eu-free with score 0.375 (binpack 0.375)",
      "10 of 10 nodes evaluated, 1 feasible",
      "1 node: offline",
      "1 node: draining",
      "3 nodes: insufficient memory (need 4096 MB, best has 3072 MB)",
      "1 node: insufficient CPU (need 1 core, best has 0.5)",
      "2 nodes: label region=eu required",
      "1 node: port 25565 already in use",
    ]);
  });

  it("say how many nodes the indexed search did not need to look at", () => {
    const nodes = cluster({ nodes: 2000, fill: 0.5, offline: 10, draining: 5 });
    const result = place({ resources: { memoryMb: 2048, cpu: 1 } }, nodes);
    expect(result.placed).toBe(true);
    const e = result.explanation;
    expect(e.notEvaluated).toBeGreaterThan(1900);
    expect(e.evaluated).toBe(2000 - e.notEvaluated);
    expect(accountedNodes(result)).toBe(2000);
    expect(e.lines[1]).toBe(
      `${e.evaluated} of 2000 nodes evaluated, ${e.feasible} feasible, ${e.notEvaluated} not evaluated (could not fit or could not score higher)`,
    );
    expect(e.lines.slice(2, 4)).toEqual(["10 nodes: offline", "5 nodes: draining"]);
  });

  it("say when the search limit cut the search short", () => {
    const nodes = cluster({ nodes: 300, fill: 0.5 }).map((n, i) =>
      i % 2 ? { ...n, capacity: { memoryMb: 65536, cpu: 32, diskMb: 1_000_000 } } : n,
    );
    const result = place({ resources: { memoryMb: 512, cpu: 0.5 } }, nodes, { maxEvaluated: 1 });
    expect(result.placed).toBe(true);
    expect(result.explanation.lines[1]).toMatch(/not evaluated \(search limit of 1 reached\)$/);
  });

  it("handle an empty snapshot", () => {
    const result = place({ resources: { memoryMb: 1 } }, []);
    expect(result).toMatchObject({
      placed: false,
      unplaced: "no node fits: the snapshot has no nodes",
    });
    expect(result.explanation.lines).toEqual(["no node fits: the snapshot has no nodes"]);
  });

  it("are plain data (JSON round-trips)", () => {
    const result = place(request, mixed);
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
  });

  it("show custom filter reasons and weights other than 1", () => {
    const nodes = [node("a", { labels: { zone: "b" } }), node("b", { labels: { tag: "x" } })];
    const result = place(
      {
        resources: { memoryMb: 2048, cpu: 1 },
        affinities: [{ label: "zone", op: "equals", value: "b", weight: 50 }],
      },
      nodes,
      {
        weights: { affinity: 2 },
        exhaustive: true,
        filters: [
          {
            name: "tagged",
            check: (view) => (view.node.labels?.tag ? "tagged nodes are reserved" : undefined),
          },
        ],
      },
    );
    expect(result.explanation.lines).toEqual([
      "placed on a with score 0.417 (binpack 0.250, affinity 0.500 ×2)",
      "2 of 2 nodes evaluated, 1 feasible",
      "1 node: tagged nodes are reserved",
    ]);
  });
});
