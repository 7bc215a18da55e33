import { describe, expect, it } from "vitest";
import { createScheduler } from "../src/index.js";
import { cluster } from "../src/testing/index.js";

describe("cluster()", () => {
  it("builds a cluster in one line", () => {
    const nodes = cluster({
      nodes: 1000,
      memory: 32768,
      labels: { region: ["eu", "us"], rack: (i) => `r${i % 40}` },
    });
    expect(nodes).toHaveLength(1000);
    expect(nodes[0]).toMatchObject({
      id: "node-0",
      status: "ONLINE",
      labels: { region: "eu", rack: "r0" },
      capacity: { memoryMb: 32768, cpu: 16, diskMb: 512_000 },
      allocated: { memoryMb: 0, cpu: 0, diskMb: 0 },
      runtimes: ["process", "docker"],
    });
    expect(nodes[1]?.labels).toEqual({ region: "us", rack: "r1" });
  });

  it("marks nodes offline and draining, spread over the list", () => {
    const nodes = cluster({ nodes: 100, offline: 10, draining: 5 });
    expect(nodes.filter((n) => n.status === "OFFLINE")).toHaveLength(10);
    expect(nodes.filter((n) => n.status === "DRAINING")).toHaveLength(5);
    expect(nodes.slice(0, 50).filter((n) => n.status === "OFFLINE").length).toBe(5);
  });

  it("pre-fills deterministically from a seed, within capacity", () => {
    const a = cluster({ nodes: 200, fill: 0.7, seed: 3 });
    expect(cluster({ nodes: 200, fill: 0.7, seed: 3 })).toEqual(a);
    expect(cluster({ nodes: 200, fill: 0.7, seed: 4 })).not.toEqual(a);
    for (const n of a) {
      expect(n.allocated!.memoryMb).toBeLessThanOrEqual(n.capacity.memoryMb);
      expect(n.allocated!.cpu).toBeLessThanOrEqual(n.capacity.cpu);
    }
    const average = a.reduce((sum, n) => sum + n.allocated!.memoryMb, 0) / a.length / 32768;
    expect(average).toBeGreaterThan(0.45);
    expect(average).toBeLessThan(0.75);
  });

  it("plugs straight into the scheduler", () => {
    const result = createScheduler(cluster({ nodes: 50, labels: { region: "eu" } })).place({
      resources: { memoryMb: 1024 },
      constraints: [{ label: "region", op: "equals", value: "eu" }],
    });
    expect(result.placed).toBe(true);
  });

  it("refuses a negative size", () => {
    expect(() => cluster({ nodes: -1 })).toThrow(RangeError);
  });
});
