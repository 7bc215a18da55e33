import type { InstanceState } from "../lifecycle/instance-lifecycle.js";
import type { Resources } from "./resources.js";

/** What a user asked for; the reconciler drives the observed state toward it. */
export type DesiredState = "running" | "stopped" | "destroyed";

export const DESIRED_STATES: readonly DesiredState[] = ["running", "stopped", "destroyed"];

/** Why an instance is FAILED. */
export interface FailureReason {
  kind: "prepare-failed" | "crashed" | "start-timeout" | "stop-failed" | "crash-loop";
  message: string;
  exitCode?: number | null;
  signal?: string | null;
}

/** One game-server instance of a template version. */
export interface Instance {
  id: string;
  name: string;
  templateName: string;
  templateVersion: number;
  desiredState: DesiredState;
  /** Observed state (from the node's reports and the Brain's own decisions). */
  state: InstanceState;
  failure: FailureReason | null;
  /** Where it is placed; null until scheduled. */
  nodeId: string | null;
  /** Incremented on every placement; commands carry it so stale ones are refused. */
  epoch: number;
  /** Named host ports, e.g. `{ game: 25565 }`. */
  ports: Readonly<Record<string, number>>;
  resources: Resources;
  /** Variable values; secret ones are never returned in clear by the API. */
  variables: Readonly<Record<string, string>>;
  /** Highest report sequence number applied (late or duplicate reports are ignored). */
  reportSeq: number;
  /** User who created it. */
  owner: string | null;
  createdAt: Date;
  updatedAt: Date;
}
