import type { Node } from "../domain/node.js";
import type { Resources } from "../domain/resources.js";
import type { NodeStatus } from "../lifecycle/node-lifecycle.js";

/** Fields a node supplies when it joins. */
export type NewNode = Omit<
  Node,
  "status" | "drainRequested" | "allocated" | "lastSeenAt" | "createdAt" | "unavailableRuntimes"
>;

/** What a node may change about itself (or an operator about it) after joining. */
export type NodeChanges = Partial<
  Pick<
    Node,
    | "name"
    | "capacity"
    | "labels"
    | "runtimes"
    | "agentVersion"
    | "portRange"
    | "overcommit"
    | "reservedPorts"
    | "unavailableRuntimes"
  >
>;

/** One taken port on a node: by an instance, or reserved for the host (`instanceId: null`). */
export interface PortAllocation {
  nodeId: string;
  port: number;
  /** The instance holding the port; null for a port the node reserves for the host. */
  instanceId: string | null;
}

/** What one instance holds on its node. */
export interface NodeReservation {
  nodeId: string;
  instanceId: string;
  resources: Resources;
  /** Ports, ascending. */
  ports: number[];
  createdAt: Date;
}

/** Nodes, their capacity, reservations and port allocations. */
export interface NodeRepository {
  /** Nodes (optionally of some statuses), ordered by id. Never includes credentials. */
  list(filter?: { status?: NodeStatus | readonly NodeStatus[] }): Promise<Node[]>;
  /** One node, or null. */
  get(id: string): Promise<Node | null>;
  /** How many nodes are in each status (absent statuses count 0). */
  countByStatus(): Promise<Partial<Record<NodeStatus, number>>>;
  /**
   * Registers a node (status ONLINE, nothing allocated) with the hash of its
   * credential; its `reservedPorts` are taken for the host. CONFLICT when the
   * id or the credential hash exists.
   */
  create(node: NewNode, credentialHash: string, at: Date): Promise<Node>;
  /** The node whose credential hashes to `credentialHash`, or null. */
  findByCredentialHash(credentialHash: string): Promise<Node | null>;
  /** Replaces a node's credential hash (rotation). NOT_FOUND when unknown. */
  setCredentialHash(id: string, credentialHash: string): Promise<void>;
  /**
   * Sets the status (validate it with `NodeLifecycle` first), and the
   * operator's drain intent and the last-seen time when given.
   */
  setStatus(
    id: string,
    status: NodeStatus,
    options?: { drainRequested?: boolean; lastSeenAt?: Date },
  ): Promise<Node>;
  /**
   * Updates what the node reports about itself. Capacity may drop below what
   * is allocated (nothing more fits until instances leave). New reserved ports
   * are taken unless an instance holds them.
   */
  updateInventory(id: string, changes: NodeChanges): Promise<Node>;
  /**
   * Records the last heartbeat time: one cheap write, for callers that persist
   * liveness only when it matters (DESIGN §5). NOT_FOUND when unknown.
   */
  touch(id: string, at: Date): Promise<void>;
  /**
   * Records the same heartbeat time for many nodes in one write (a Brain that
   * does not hold the liveness lease relays what it heard this way). Unknown
   * ids are ignored; returns how many nodes were updated.
   */
  touchMany(ids: readonly string[], at: Date): Promise<number>;
  /**
   * Reserves resources and ports on an ONLINE node for an instance, atomically
   * and enforced by the store (never over capacity × overcommit, never a port
   * twice, even under concurrent callers). Fails with CONFLICT and reserves
   * nothing when capacity is short (`details.reason: "capacity"`), a port is
   * taken (`"ports"`, with `details.ports`), the node is not ONLINE
   * (`"status"`), or the instance already holds a reservation (`"reserved"`).
   * NOT_FOUND when the node is unknown. "Nothing" holds inside a caller's
   * transaction too: it may catch the CONFLICT and try another node.
   */
  reserve(
    nodeId: string,
    instanceId: string,
    resources: Resources,
    ports: readonly number[],
    at: Date,
  ): Promise<NodeReservation>;
  /** Releases everything an instance holds; returns what was released (null when nothing). */
  release(instanceId: string): Promise<NodeReservation | null>;
  /** What an instance holds, or null. */
  getReservation(instanceId: string): Promise<NodeReservation | null>;
  /** Taken ports (by instances and for hosts), of one node or of all, by node then port. */
  listPortAllocations(filter?: { nodeId?: string }): Promise<PortAllocation[]>;
  /** Deletes a node. NOT_FOUND when unknown; CONFLICT while instances hold reservations on it. */
  delete(id: string): Promise<void>;
}
