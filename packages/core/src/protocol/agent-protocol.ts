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

export interface SyncRequest {
  /** Present when the node's description changed since the last sync. */
  node?: Partial<NodeDescription>;
  inventory: InventoryItem[];
  reports: SyncReport[];
  commandResults: CommandResultReport[];
  logs: LogBatch[];
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
  heartbeatIntervalMs: number;
}

export const AGENT_SYNC_PATH = "/api/v1/agent/sync";
export const AGENT_JOIN_PATH = "/api/v1/agent/join";
