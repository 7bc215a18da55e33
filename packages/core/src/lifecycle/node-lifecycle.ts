/**
 * The node lifecycle (DESIGN §4): ONLINE, DRAINING, OFFLINE. Liveness comes
 * from heartbeats measured on the Brain's clock; draining is an operator's
 * decision that survives an outage (a drained node comes back DRAINING).
 */
import { IllegalTransitionError } from "./instance-lifecycle.js";

export const NODE_STATUSES = ["ONLINE", "DRAINING", "OFFLINE"] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];

export const NODE_TRIGGERS = [
  /** An operator stops new placements on the node. */
  "drain",
  /** An operator allows placements again. */
  "undrain",
  /** No heartbeat within the offline timeout. */
  "timeout",
  /** A heartbeat arrived; from OFFLINE the target depends on `drainRequested`. */
  "heartbeat",
] as const;
export type NodeTrigger = (typeof NODE_TRIGGERS)[number];

export const NODE_TRANSITIONS = {
  ONLINE: { drain: ["DRAINING"], undrain: ["ONLINE"], timeout: ["OFFLINE"], heartbeat: ["ONLINE"] },
  DRAINING: {
    drain: ["DRAINING"],
    undrain: ["ONLINE"],
    timeout: ["OFFLINE"],
    heartbeat: ["DRAINING"],
  },
  OFFLINE: { drain: ["OFFLINE"], undrain: ["OFFLINE"], heartbeat: ["ONLINE", "DRAINING"] },
} as const satisfies Record<NodeStatus, Partial<Record<NodeTrigger, readonly NodeStatus[]>>>;

const TABLE: Readonly<Record<NodeStatus, Partial<Record<NodeTrigger, readonly NodeStatus[]>>>> =
  NODE_TRANSITIONS;

export const NodeLifecycle = {
  statuses: NODE_STATUSES,
  triggers: NODE_TRIGGERS,
  transitions: NODE_TRANSITIONS,

  /**
   * The next status. `drainRequested` is the operator's standing intent, which
   * decides where a returning node lands. Drain/undrain of an OFFLINE node only
   * change that intent (the status stays OFFLINE until a heartbeat).
   * Throws `IllegalTransitionError` for a trigger the table does not allow.
   */
  next(from: NodeStatus, trigger: NodeTrigger, drainRequested: boolean): NodeStatus {
    const targets = TABLE[from]?.[trigger];
    if (!targets || targets.length === 0) {
      throw new IllegalTransitionError(from, trigger, `cannot ${trigger} a node that is ${from}`);
    }
    if (targets.length === 1) return targets[0]!;
    return drainRequested ? "DRAINING" : "ONLINE";
  },

  /** Can new instances be placed on a node in this status? */
  schedulable(status: NodeStatus): boolean {
    return status === "ONLINE";
  },
} as const;
