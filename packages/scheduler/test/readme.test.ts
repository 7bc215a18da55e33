import { describe, expect, it } from "vitest";
import { createScheduler, type SchedulerFilter, type SchedulerScorer } from "../src/index.js";
import { cluster } from "../src/testing/index.js";

describe("README", () => {
  it("the ten-line example runs as written", () => {
    const portRange = { from: 30000, to: 30999 };
    const scheduler = createScheduler(
      [
        {
          id: "eu-1",
          labels: { region: "eu" },
          capacity: { memoryMb: 8192, cpu: 4, diskMb: 100_000 },
          portRange,
        },
        {
          id: "eu-2",
          labels: { region: "eu" },
          capacity: { memoryMb: 16384, cpu: 8, diskMb: 100_000 },
          portRange,
        },
        {
          id: "us-1",
          labels: { region: "us" },
          capacity: { memoryMb: 16384, cpu: 8, diskMb: 100_000 },
          portRange,
        },
      ],
      { seed: 42 },
    );
    const result = scheduler.place({
      resources: { memoryMb: 4096, cpu: 2 },
      ports: [{ name: "game" }, { name: "query" }],
      constraints: [{ label: "region", op: "equals", value: "eu" }],
    });
    expect(
      result.placed ? `${result.nodeId} ${JSON.stringify(result.ports)}` : result.unplaced,
    ).toBe('eu-1 {"game":30000,"query":30001}');
    expect(result.explanation.lines.join("\n")).toBe(
      [
        "placed on eu-1 with score 0.500 (binpack 0.500)",
        "3 of 3 nodes evaluated, 2 feasible",
        "1 node: label region=eu required",
      ].join("\n"),
    );
  });

  it("the custom filter and scorer example works", () => {
    const nodes = cluster({
      nodes: 6,
      labels: {
        maintenance: (i) => (i < 3 ? "now" : undefined),
        disk: (i) => (i === 5 ? "ssd" : "hdd"),
      },
    });
    const maintenance: SchedulerFilter = {
      name: "maintenance",
      check: (view) =>
        view.node.labels?.maintenance === "now" ? "in a maintenance window" : undefined,
    };
    const preferSsd: SchedulerScorer = {
      name: "ssd",
      weight: 2,
      score: (view) => (view.node.labels?.disk === "ssd" ? 1 : 0),
    };
    const scheduler = createScheduler(nodes, {
      filters: [maintenance],
      scorers: [preferSsd],
      exhaustive: true,
    });
    const result = scheduler.place({ resources: { memoryMb: 1024 } });
    expect(result.placed && result.nodeId).toBe("node-5");
    expect(result.explanation.lines).toContain("3 nodes: in a maintenance window");
    expect(result.explanation.lines[0]).toMatch(/ssd 1\.000 ×2\)$/);
  });

  it("the cluster() line builds what it says", () => {
    const nodes = cluster({
      nodes: 1000,
      memory: 32768,
      labels: { region: ["eu", "us"], rack: (i) => `r${i % 40}` },
    });
    expect(nodes).toHaveLength(1000);
    expect(nodes[41]?.labels).toEqual({ region: "us", rack: "r1" });
  });
});
