import type { Node } from "../domain/node.js";
import type { Resources } from "../domain/resources.js";
import type { NodeStatus } from "../lifecycle/node-lifecycle.js";

/** Fields a node supplies when it joins. */
export type NewNode = Omit<
  Node,
  "status" | "drainRequested" | "allocated" | "lastSeenAt" | "createdAt"
>;

/** Nodes, their capacity and reservations. */
export interface NodeRepository {
  list(filter?: { status?: NodeStatus }): Promise<Node[]>;
  get(id: string): Promise<Node | null>;
  /** Registers a node (status ONLINE) with the hash of its credential. */
  create(node: NewNode, credentialHash: string, at: Date): Promise<Node>;
  /** The node whose credential hashes to `credentialHash`, or null. */
  findByCredentialHash(credentialHash: string): Promise<Node | null>;
  /** Changes status (and the operator's drain intent when given). */
  setStatus(id: string, status: NodeStatus, drainRequested?: boolean): Promise<Node>;
  /** Updates what the node reports about itself (capacity, labels, runtimes, version). */
  updateInventory(
    id: string,
    changes: Partial<Pick<Node, "capacity" | "labels" | "runtimes" | "agentVersion" | "portRange">>,
  ): Promise<Node>;
  /** Records the last heartbeat time (written only when it matters, see DESIGN §5). */
  touch(id: string, at: Date): Promise<void>;
  /**
   * Reserves resources and ports on a node, atomically: fails with CONFLICT
   * (and reserves nothing) if capacity or any port is taken.
   */
  reserve(
    id: string,
    instanceId: string,
    resources: Resources,
    ports: readonly number[],
  ): Promise<void>;
  /** Releases everything an instance reserved on a node. */
  release(id: string, instanceId: string): Promise<void>;
  /** Ports allocated on a node. */
  allocatedPorts(id: string): Promise<number[]>;
  /** Deletes a node. CONFLICT while it holds instances. */
  delete(id: string): Promise<void>;
}
