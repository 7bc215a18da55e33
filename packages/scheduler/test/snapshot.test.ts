import type { Instance, Node } from "@orchestrator/core";
import { NotFoundError } from "@orchestrator/core";
import { describe, expect, it } from "vitest";
import {
  applyPlacement,
  clusterSnapshot,
  createScheduler,
  nodeSnapshot,
  place,
} from "../src/index.js";
import { deepFreeze } from "./arbitraries.js";
import { node } from "./helpers.js";

const coreNode = (id: string, overrides: Partial<Node> = {}): Node => ({
  id,
  name: `${id}.example`,
  status: "ONLINE",
  drainRequested: false,
  labels: { region: "eu" },
  capacity: { memoryMb: 16384, cpu: 8, diskMb: 200_000 },
  allocated: { memoryMb: 4096, cpu: 2, diskMb: 1000 },
  overcommit: 1,
  portRange: { from: 30000, to: 30010 },
  reservedPorts: [30001],
  runtimes: ["docker"],
  unavailableRuntimes: [],
  agentVersion: "1.4.0",
  lastSeenAt: null,
  createdAt: new Date("2026-01-01T00:00:00Z"),
  ...overrides,
});

const instance = (
  id: string,
  nodeId: string | null,
  templateName: string,
  ports: Record<string, number>,
  state: Instance["state"] = "RUNNING",
) => ({ id, nodeId, templateName, ports, state }) as const;

describe("snapshots from core's domain types", () => {
  it("a core Node is a valid snapshot as it is", () => {
    const result = place(
      { resources: { memoryMb: 1024 }, runtime: "docker", ports: [{ name: "game" }] },
      [coreNode("a")],
    );
    expect(result.placed && result.ports).toEqual({ game: 30000 });
  });

  it("nodeSnapshot adds the ports and per-template counts of the node's instances", () => {
    const snapshot = nodeSnapshot(coreNode("a"), [
      instance("i1", "a", "mc", { game: 30000, query: 30002 }),
      instance("i2", "a", "mc", { game: 30003 }, "STOPPED"),
      instance("i3", "a", "mc", { game: 30004 }, "DESTROYED"),
      instance("i4", "b", "mc", { game: 30005 }),
      instance("i5", "a", "rust", {}),
    ]);
    expect(snapshot.usedPorts).toEqual([30000, 30002, 30003]);
    expect(snapshot.templateCounts).toEqual({ mc: 2, rust: 1 });
    expect(snapshot.agentVersion).toBe("1.4.0");
    const result = place({ resources: { memoryMb: 0 }, ports: [{ name: "game" }] }, [snapshot]);
    expect(result.placed && result.ports).toEqual({ game: 30004 });
  });

  it("clusterSnapshot groups instances by node and ignores unplaced ones", () => {
    const nodes = [coreNode("a"), coreNode("b")];
    const snapshot = clusterSnapshot(nodes, [
      instance("i1", "a", "mc", { game: 30000 }),
      instance("i2", "b", "mc", { game: 30000 }),
      instance("i3", "b", "mc", { game: 30002 }),
      instance("i4", null, "mc", {}),
    ]);
    expect(snapshot.map((n) => n.templateCounts)).toEqual([{ mc: 1 }, { mc: 2 }]);
    const request = {
      templateName: "mc",
      resources: { memoryMb: 0 },
      antiAffinity: { maxPerNode: 2 },
    };
    expect(place(request, snapshot)).toMatchObject({ placed: true, nodeId: "a" });
  });
});

describe("applyPlacement", () => {
  it("returns a new snapshot with the placement folded in, sharing untouched nodes", () => {
    const nodes = deepFreeze([node("a"), node("b", { templateCounts: { mc: 1 } })]);
    const request = { templateName: "mc", resources: { memoryMb: 1024, cpu: 0.5, diskMb: 10 } };
    const next = applyPlacement(nodes, request, { nodeId: "b", ports: { game: 30000 } });
    expect(next[0]).toBe(nodes[0]);
    expect(next[1]).toMatchObject({
      allocated: { memoryMb: 1024, cpu: 0.5, diskMb: 10 },
      usedPorts: [30000],
      templateCounts: { mc: 2 },
    });
    expect(nodes[1]?.allocated).toEqual({ memoryMb: 0, cpu: 0, diskMb: 0 });
    expect(() => applyPlacement(nodes, request, { nodeId: "zz", ports: {} })).toThrow(
      NotFoundError,
    );
  });
});

describe("a prepared scheduler", () => {
  it("never changes between placements (only batches consume, on their own copy)", () => {
    const scheduler = createScheduler([node("a", { portRange: { from: 30000, to: 30000 } })]);
    const request = { resources: { memoryMb: 8192 }, ports: [{ name: "game" }] };
    expect(scheduler.place(request).placed).toBe(true);
    expect(scheduler.place(request).placed).toBe(true);
    expect(scheduler.placeBatch([request, request]).map((r) => r.placed)).toEqual([true, false]);
    expect(scheduler.placeBatch([request]).map((r) => r.placed)).toEqual([true]);
  });
});
