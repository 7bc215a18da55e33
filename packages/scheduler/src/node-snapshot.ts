/**
 * What the scheduler knows about a node: a lighter shape than core's `Node`
 * (a core `Node` is a valid `NodeSnapshot` as it is) plus what its placed
 * instances hold (ports in use, instances per template). Build one from the
 * Brain's records with `nodeSnapshot` / `clusterSnapshot`.
 */
import type {
  Instance,
  Node,
  NodeStatus,
  PortRange,
  Resources,
  RuntimeKind,
} from "@orchestrator/core";

export interface NodeSnapshot {
  /** Unique within the snapshot. */
  readonly id: string;
  /** For display and for `$name` constraints. */
  readonly name?: string;
  /** Only ONLINE nodes take placements; defaults to ONLINE. */
  readonly status?: NodeStatus;
  /** An operator asked to drain the node: no new placements, whatever the status. */
  readonly drainRequested?: boolean;
  readonly labels?: Readonly<Record<string, string>>;
  /** What the node offers. */
  readonly capacity: Resources;
  /** What placed instances have reserved; zero when absent. */
  readonly allocated?: Resources;
  /** Multiplier on memory and CPU capacity (not disk); 1 when absent. */
  readonly overcommit?: number;
  /** Dynamic ports come from this inclusive range; without one, only static ports can be placed. */
  readonly portRange?: PortRange;
  /** Ports never handed out (used by the host). */
  readonly reservedPorts?: readonly number[];
  /** Ports held by instances already on the node. */
  readonly usedPorts?: readonly number[];
  /** Runtimes the node offers; a request naming a runtime only goes where it is offered. */
  readonly runtimes?: readonly RuntimeKind[];
  /** Agent version, for `$agentVersion` constraints. */
  readonly agentVersion?: string;
  /** Instances already on the node, per template name (anti-affinity and spread count these). */
  readonly templateCounts?: Readonly<Record<string, number>>;
}

/** The parts of an instance that matter to placement. */
export type PlacedInstance = Pick<Instance, "templateName" | "ports"> &
  Partial<Pick<Instance, "state" | "nodeId">>;

/**
 * A snapshot of one core `Node` and the instances placed on it. Resources come
 * from `node.allocated` (the Brain's reservation, authoritative); ports and
 * per-template counts come from the instances. DESTROYED instances are ignored.
 */
export function nodeSnapshot(node: Node, instances: readonly PlacedInstance[] = []): NodeSnapshot {
  const usedPorts: number[] = [];
  const templateCounts: Record<string, number> = {};
  for (const instance of instances) {
    if (instance.state === "DESTROYED") continue;
    if (instance.nodeId !== undefined && instance.nodeId !== null && instance.nodeId !== node.id)
      continue;
    for (const port of Object.values(instance.ports)) usedPorts.push(port);
    templateCounts[instance.templateName] = (templateCounts[instance.templateName] ?? 0) + 1;
  }
  return {
    id: node.id,
    name: node.name,
    status: node.status,
    drainRequested: node.drainRequested,
    labels: node.labels,
    capacity: node.capacity,
    allocated: node.allocated,
    overcommit: node.overcommit,
    portRange: node.portRange,
    reservedPorts: node.reservedPorts,
    usedPorts,
    runtimes: node.runtimes,
    agentVersion: node.agentVersion,
    templateCounts,
  };
}

/** Snapshots of every node, each with the instances whose `nodeId` names it. */
export function clusterSnapshot(
  nodes: readonly Node[],
  instances: readonly (PlacedInstance & { nodeId: string | null })[],
): NodeSnapshot[] {
  const byNode = new Map<string, PlacedInstance[]>();
  for (const instance of instances) {
    if (instance.nodeId === null) continue;
    let list = byNode.get(instance.nodeId);
    if (!list) {
      list = [];
      byNode.set(instance.nodeId, list);
    }
    list.push(instance);
  }
  return nodes.map((node) => nodeSnapshot(node, byNode.get(node.id)));
}
