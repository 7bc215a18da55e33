import type { DesiredState, FailureReason, Instance } from "../domain/instance.js";
import type { Actor, InstanceEvent } from "../domain/instance-event.js";
import type { InstanceState, InstanceTrigger } from "../lifecycle/instance-lifecycle.js";
import type { Page } from "./repositories.js";

/** An instance as stored: the domain record plus what persistence adds. */
export interface StoredInstance extends Instance {
  /** Incremented by every change: the optimistic-concurrency token. */
  version: number;
  /**
   * Names of the variables whose values are secret. Their values are left out
   * of `variables` unless asked for (`get(id, { includeSecrets: true })`).
   */
  secretVariables: readonly string[];
}

/** Which instances to list; every given criterion must hold. */
export interface InstanceFilter {
  /** One state or any of several. */
  state?: InstanceState | readonly InstanceState[];
  desiredState?: DesiredState;
  nodeId?: string;
  templateName?: string;
  owner?: string;
  /** Page size (1..10,000); everything when absent. */
  limit?: number;
  /** Opaque cursor from a previous page's `next`. */
  after?: string;
}

/** A new instance. Values of the variables named in `secretVariables` are kept apart. */
export type NewInstance = Omit<Instance, "createdAt" | "updatedAt" | "reportSeq" | "failure"> & {
  /** Names (keys of `variables`) whose values are secret. */
  secretVariables?: readonly string[];
};

/** What the caller believes the instance is; a change applies only if it still is. */
export interface InstanceExpectation {
  state: InstanceState;
  /** When given, the row version must match too (detects any concurrent change). */
  version?: number;
}

/** Changes to an instance. Absent fields are left as they are. */
export interface InstanceChange {
  state?: InstanceState;
  desiredState?: DesiredState;
  failure?: FailureReason | null;
  nodeId?: string | null;
  epoch?: number;
  ports?: Readonly<Record<string, number>>;
  templateVersion?: number;
  reportSeq?: number;
}

/** A lifecycle transition, validated by `InstanceLifecycle` and recorded as an event. */
export interface InstanceTransition {
  expected: InstanceExpectation;
  trigger: InstanceTrigger;
  /** Target for triggers with several (`found`). */
  to?: InstanceState;
  reason: string;
  actor: Actor;
  at: Date;
  /** Other fields changed in the same write (placement, failure, report seq, ...). */
  change?: Omit<InstanceChange, "state">;
}

/** Why an instance is not placed yet, as the scheduler explained it (stored as JSON). */
export interface PendingPlacementNote {
  at: Date;
  /** A JSON-serialisable explanation (the Brain stores the scheduler's `Explanation`). */
  explanation: unknown;
}

/** Instances: desired state, observed state, placement. */
export interface InstanceRepository {
  /**
   * Instances matching `filter`, oldest first (by creation time, then id),
   * one page at a time. Secret variable values are never included.
   */
  list(filter?: InstanceFilter): Promise<Page<StoredInstance>>;
  /** How many instances match (cursor and limit ignored). */
  count(filter?: Omit<InstanceFilter, "limit" | "after">): Promise<number>;
  /** How many instances are in each state (absent states count 0). */
  countByState(): Promise<Partial<Record<InstanceState, number>>>;
  /** One instance, or null. Secret values only with `includeSecrets` (e.g. to prepare it). */
  get(id: string, options?: { includeSecrets?: boolean }): Promise<StoredInstance | null>;
  /** Stores a new instance (version 1, report seq 0). CONFLICT when the id exists. */
  create(instance: NewInstance, at: Date): Promise<StoredInstance>;
  /**
   * Applies `change` if the instance still matches `expected`; otherwise
   * throws CONFLICT (someone moved it first) and writes nothing. A state change
   * must be allowed by the lifecycle from `expected.state` by some trigger
   * (ILLEGAL_TRANSITION otherwise). Reaching DESTROYED releases the instance's
   * reservation in the same write. NOT_FOUND when unknown.
   */
  update(
    id: string,
    expected: InstanceExpectation,
    change: InstanceChange,
    at: Date,
  ): Promise<StoredInstance>;
  /**
   * Applies a lifecycle trigger (ILLEGAL_TRANSITION when the table forbids it)
   * with the same optimistic check as `update`, and appends its event, in one
   * transaction.
   */
  transition(
    id: string,
    transition: InstanceTransition,
  ): Promise<{ instance: StoredInstance; event: InstanceEvent }>;
  /**
   * Removes a DESTROYED instance's row (its events stay). CONFLICT in any
   * other state; NOT_FOUND when unknown.
   */
  delete(id: string): Promise<void>;
  /** The placement note stored for an instance, or null. */
  getPendingPlacement(id: string): Promise<PendingPlacementNote | null>;
  /**
   * Stores why an instance is not placed (null clears it). Not a change of the
   * instance: no version bump, no event. Unknown instances are ignored; the
   * note goes with the instance's row.
   */
  setPendingPlacement(id: string, note: PendingPlacementNote | null): Promise<void>;
}
