import type { InstanceState } from "../lifecycle/instance-lifecycle.js";

/** Who caused a transition. */
export type Actor =
  | { kind: "user"; id: string }
  | { kind: "node"; id: string }
  | { kind: "system"; id: string };

/** One accepted lifecycle transition, appended to the event log. */
export interface InstanceEvent {
  /** Global, monotonic; SSE clients resume from it (`Last-Event-ID`). */
  seq: number;
  instanceId: string;
  from: InstanceState;
  to: InstanceState;
  at: Date;
  reason: string;
  actor: Actor;
}
