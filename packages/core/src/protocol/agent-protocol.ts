/**
 * The wire contract between a Node Agent and the Brain (DESIGN §5). Agents
 * connect outbound only: `POST /api/v1/agent/join` once, then the
 * `POST /api/v1/agent/sync` long-poll carries everything up and commands down.
 * Both apps import these types; neither copies them.
 */
import type { CommandType } from "../domain/command.js";
import type { FailureReason } from "../domain/instance.js";
import type { PortRange, Resources, RuntimeKind } from "../domain/resources.js";
import type { TemplateDefinition } from "../domain/template.js";
import type { InstanceState, InstanceTrigger } from "../lifecycle/instance-lifecycle.js";

/** What a node says about itself at join (and on every sync, when it changes). */
export interface NodeDescription {
  name: string;
  capacity: Resources;
  labels: Record<string, string>;
  portRange: PortRange;
  reservedPorts: number[];
  runtimes: RuntimeKind[];
  agentVersion: string;
}

export interface JoinRequest extends NodeDescription {
  /** The one-time join token an admin created. */
  joinToken: string;
}

export interface JoinResponse {
  nodeId: string;
  /** The node credential: bearer secret for the agent routes, for this node only. */
  credential: string;
  heartbeatIntervalMs: number;
}

/** One lifecycle transition observed on the node. */
export interface SyncReport {
  /** Journal position; the Brain acknowledges up to one. */
  n: number;
  instanceId: string;
  /** Per-instance sequence number. */
  seq: number;
  /** The placement epoch the node worked under. */
  epoch: number;
  trigger: InstanceTrigger;
  /** The reported state, for multi-target triggers (`found`). */
  to?: InstanceState;
  reason: string;
  at: string;
  failure?: FailureReason;
  /** Non-fatal problems (e.g. storage unreachable: a cached layer was used). */
  warnings?: string[];
}

/** What the node runs now: sent in full on every sync. */
export interface InventoryItem {
  instanceId: string;
  state: InstanceState;
  /** Last sequence number used for this instance. */
  seq: number;
  epoch: number;
}

export interface CommandResultReport {
  commandId: string;
  ok: boolean;
  message?: string;
}

export interface LogBatch {
  instanceId: string;
  lines: { stream: "stdout" | "stderr"; line: string; at: string }[];
}

/**
 * One resource-usage sample of a running instance (`Runtime.stats()` as it
 * travels): pushed up by the agent while someone watches the instance's
 * stats, kept by the Brain (latest per instance) and streamed to viewers of
 * `GET /api/v1/instances/:id/stats`. Unknown figures are null.
 */
export interface InstanceStatsSample {
  instanceId: string;
  /** When the figures were taken (ISO 8601). */
  at: string;
  /** CPU usage in cores (1.5 = one and a half cores busy). */
  cpu: number;
  /** Resident memory in bytes. */
  memoryBytes: number;
  /** The instance's memory reservation in bytes (a hard limit where the runtime enforces limits). */
  memoryLimitBytes: number | null;
  networkRxBytes: number | null;
  networkTxBytes: number | null;
  /** Bytes used by the instance directory. */
  diskBytes: number | null;
}

/** Whether one of the node's runtimes answers (a stopped or hung engine does not). */
export interface RuntimeStatus {
  kind: RuntimeKind;
  available: boolean;
  /** Why it is unavailable ("docker engine did not answer within 5 s"). */
  reason?: string;
  /** Since when it is in this state (ISO 8601). */
  since: string;
}

export interface SyncRequest {
  /** Present when the node's description changed since the last sync. */
  node?: Partial<NodeDescription>;
  /**
   * Random id of this agent process, the same on every sync it sends. The
   * Brain lets one session hold a node at a time: a second process using the
   * same credential is refused (`AGENT_IDENTITY_CONFLICT`) while the holder is
   * alive. Optional for agents older than this field.
   */
  agentSessionId?: string;
  /** The agent is shutting down: the Brain may hand the node to a new session at once. */
  releaseSession?: boolean;
  /**
   * This sync's number within the agent session (1, 2, ...). An agent hangs up
   * a parked sync when it has news, and a Brain that stalled (paused, overloaded)
   * may still read that abandoned request later — even after the newer one. With
   * the numbers the Brain does nothing for a sync older than one it already took
   * up (its inventory is stale), and hands out again the commands of answers
   * the agent never received (see `received`) instead of waiting for their
   * redelivery. Optional for agents older than these fields.
   */
  syncNumber?: number;
  /**
   * The `syncNumber` of the last sync whose answer the agent received; 0 (none
   * yet) tells the Brain a new agent process numbers from 1 again, even in a
   * session continued from its predecessor.
   */
  received?: number;
  inventory: InventoryItem[];
  reports: SyncReport[];
  commandResults: CommandResultReport[];
  logs: LogBatch[];
  /** Latest samples of the instances named in `SyncResponse.watchStats`. */
  stats?: InstanceStatsSample[];
  /** Watched instances whose runtime cannot report stats (sent once per watch). */
  statsUnsupported?: string[];
  /**
   * Status of every runtime of the node. Sent while any runtime is
   * unavailable (on every sync, so a restarted Brain or another replica learns
   * it at once) and on the first sync after a change; absent means all are
   * available.
   */
  runtimes?: RuntimeStatus[];
  /** May the Brain park this call until there is something to say? */
  wait: boolean;
}

/** A command for the node. The agent runs each id at most once. */
export interface AgentCommand {
  id: string;
  instanceId: string;
  type: CommandType;
  epoch: number;
  payload: AgentCommandPayload;
}

/** Everything the agent needs to prepare an instance (it keeps no other state). */
export interface PreparePayload {
  instanceName: string;
  template: { name: string; version: number; definition: TemplateDefinition };
  /** Variable values, secrets included (the agent needs them; never logged). */
  variables: Record<string, string>;
  ports: Record<string, number>;
  resources: Resources;
  runtime: RuntimeKind;
}

export type AgentCommandPayload = PreparePayload | { line: string } | Record<string, never>;

export interface SyncResponse {
  /** Reports up to this journal position are stored: the agent may forget them. */
  acknowledgedReports: number;
  commands: AgentCommand[];
  /** Instances whose logs someone is watching: push their lines. */
  watchLogs: string[];
  /** Instances whose stats someone is watching: sample them (~every 2 s) and push the samples. */
  watchStats: string[];
  heartbeatIntervalMs: number;
}

export const AGENT_SYNC_PATH = "/api/v1/agent/sync";
export const AGENT_JOIN_PATH = "/api/v1/agent/join";
