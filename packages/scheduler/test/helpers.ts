import type { NodeSnapshot, PlacementResult } from "../src/index.js";

/** A node with 8 GiB, 4 cores, 100 GiB of disk and ports 30000–30009, overridable. */
export function node(id: string, overrides: Partial<NodeSnapshot> = {}): NodeSnapshot {
  return {
    id,
    status: "ONLINE",
    labels: {},
    capacity: { memoryMb: 8192, cpu: 4, diskMb: 102_400 },
    allocated: { memoryMb: 0, cpu: 0, diskMb: 0 },
    portRange: { from: 30000, to: 30009 },
    runtimes: ["process", "docker"],
    ...overrides,
  };
}

/** The node a result was placed on; fails the test when it was not placed. */
export function placedOn(result: PlacementResult): string {
  if (!result.placed) throw new Error(`expected a placement, got: ${result.unplaced}`);
  return result.nodeId;
}

/** The `filter: reason` pairs with counts, for compact assertions. */
export function reasons(result: PlacementResult): string[] {
  return result.explanation.filtered.map((f) => `${f.count} ${f.filter}: ${f.reason}`);
}
