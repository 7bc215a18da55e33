/**
 * Folding a placement back into a snapshot, without touching the original:
 * what a caller does between two `place` calls (a batch does it internally).
 */
import { NotFoundError } from "@orchestrator/core";
import type { NodeSnapshot } from "./node-snapshot.js";
import type { PlacementRequest } from "./placement-request.js";
import type { Placement } from "./scheduler.js";

/**
 * A new snapshot in which the placed node has the request's resources
 * allocated, its ports used and one more instance of its template. Every
 * other node is the same object as before.
 */
export function applyPlacement(
  nodes: readonly NodeSnapshot[],
  request: PlacementRequest,
  placement: Pick<Placement, "nodeId" | "ports">,
): NodeSnapshot[] {
  const index = nodes.findIndex((node) => node.id === placement.nodeId);
  if (index < 0) throw new NotFoundError("node", placement.nodeId);
  const node = nodes[index]!;
  const allocated = node.allocated ?? { memoryMb: 0, cpu: 0, diskMb: 0 };
  const updated: NodeSnapshot = {
    ...node,
    allocated: {
      memoryMb: allocated.memoryMb + request.resources.memoryMb,
      cpu: allocated.cpu + (request.resources.cpu ?? 0),
      diskMb: allocated.diskMb + (request.resources.diskMb ?? 0),
    },
    usedPorts: [...(node.usedPorts ?? []), ...Object.values(placement.ports)],
    templateCounts:
      request.templateName === undefined
        ? node.templateCounts
        : {
            ...node.templateCounts,
            [request.templateName]: (node.templateCounts?.[request.templateName] ?? 0) + 1,
          },
  };
  const copy = nodes.slice();
  copy[index] = updated;
  return copy;
}
