import type { DesiredState, FailureReason, Instance } from "../domain/instance.js";
import type { InstanceState } from "../lifecycle/instance-lifecycle.js";

export interface InstanceFilter {
  state?: InstanceState | readonly InstanceState[];
  desiredState?: DesiredState;
  nodeId?: string;
  templateName?: string;
  owner?: string;
  limit?: number;
  /** Opaque cursor from a previous page. */
  after?: string;
}

export type NewInstance = Omit<Instance, "createdAt" | "updatedAt" | "reportSeq" | "failure">;

/** Changes to an instance, applied only if its state is still `expectedState` (optimistic). */
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

/** Instances: desired state, observed state, placement. */
export interface InstanceRepository {
  list(filter?: InstanceFilter): Promise<Instance[]>;
  get(id: string): Promise<Instance | null>;
  create(instance: NewInstance, at: Date): Promise<Instance>;
  /**
   * Applies `change` if the instance is still in `expectedState`; otherwise
   * throws CONFLICT (someone else moved it first) and writes nothing.
   */
  update(
    id: string,
    expectedState: InstanceState,
    change: InstanceChange,
    at: Date,
  ): Promise<Instance>;
  /** Removes a DESTROYED instance's row (events stay). */
  delete(id: string): Promise<void>;
}
