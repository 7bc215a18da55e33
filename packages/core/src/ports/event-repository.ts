import type { InstanceEvent } from "../domain/instance-event.js";

/** The append-only instance event log, with a global monotonic `seq`. */
export interface EventRepository {
  /** Appends an event and returns it with its assigned `seq`. */
  append(event: Omit<InstanceEvent, "seq">): Promise<InstanceEvent>;
  /** Events with `seq` greater than `afterSeq` (SSE resume), oldest first. */
  listAfter(afterSeq: number, limit: number): Promise<InstanceEvent[]>;
  /** One instance's events, oldest first. */
  listForInstance(instanceId: string, limit?: number): Promise<InstanceEvent[]>;
  /** The highest `seq` so far (0 when empty). */
  lastSeq(): Promise<number>;
}
