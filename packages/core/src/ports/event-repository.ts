import type { Actor, InstanceEvent } from "../domain/instance-event.js";
import type { NodeStatus } from "../lifecycle/node-lifecycle.js";

/** One node status change, in the same log (and `seq` space) as instance events. */
export interface NodeEvent {
  /** Global, monotonic; shared with instance events. */
  seq: number;
  nodeId: string;
  from: NodeStatus;
  to: NodeStatus;
  at: Date;
  reason: string;
  actor: Actor;
}

/** An entry of the event log, tagged by what it is about. */
export type LoggedEvent = ({ kind: "instance" } & InstanceEvent) | ({ kind: "node" } & NodeEvent);

/**
 * The append-only event log, with a global monotonic `seq`: a reader that
 * resumes after seq N (SSE `Last-Event-ID`) never misses an event committed
 * later with a smaller seq, because seqs are handed out in commit order.
 */
export interface EventRepository {
  /** Appends an instance event and returns it with its assigned `seq`. */
  append(event: Omit<InstanceEvent, "seq">): Promise<InstanceEvent>;
  /** Appends a node event and returns it with its assigned `seq`. */
  appendNodeEvent(event: Omit<NodeEvent, "seq">): Promise<NodeEvent>;
  /** Events with `seq` greater than `afterSeq` (SSE resume), oldest first, at most `limit`. */
  listAfter(afterSeq: number, limit: number): Promise<LoggedEvent[]>;
  /** One instance's events, oldest first, optionally after a seq and at most `limit`. */
  listForInstance(
    instanceId: string,
    options?: { afterSeq?: number; limit?: number },
  ): Promise<InstanceEvent[]>;
  /** The highest `seq` so far (0 when empty). */
  lastSeq(): Promise<number>;
}
