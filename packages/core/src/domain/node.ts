import type { NodeStatus } from "../lifecycle/node-lifecycle.js";
import type { PortRange, Resources, RuntimeKind } from "./resources.js";

/** A runtime of a node that does not answer right now (a stopped or hung engine), as its agent reported. */
export interface UnavailableRuntime {
  kind: RuntimeKind;
  /** Why, in the agent's words ("docker engine did not answer within 5 s"). */
  reason: string | null;
  /** Since when (the agent's report). */
  since: Date;
}

/** A machine running a Node Agent. */
export interface Node {
  id: string;
  name: string;
  status: NodeStatus;
  /** Set by an operator; survives OFFLINE so a drained node comes back DRAINING. */
  drainRequested: boolean;
  labels: Readonly<Record<string, string>>;
  /** What the node offers. */
  capacity: Resources;
  /** What placed instances have reserved. */
  allocated: Resources;
  /** Capacity multiplier for CPU and memory (1 = none). */
  overcommit: number;
  /** Dynamic ports are taken from this range. */
  portRange: PortRange;
  /** Ports never handed out (used by the host). */
  reservedPorts: readonly number[];
  runtimes: readonly RuntimeKind[];
  /** Runtimes the agent reports unavailable; empty while all answer. Nothing is placed on them. */
  unavailableRuntimes: readonly UnavailableRuntime[];
  /** Agent version, for display. */
  agentVersion: string;
  /** When the Brain last heard from the node (Brain clock). */
  lastSeenAt: Date | null;
  createdAt: Date;
}
