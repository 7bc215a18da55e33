/**
 * The tables as kysely sees them. Times are integer milliseconds since the
 * epoch (no time-zone or precision differences between dialects), CPU is in
 * millicores (integer arithmetic in capacity checks), booleans are 0/1, and
 * structured values are JSON text. Every table is prefixed `orch_` so the
 * schema can share a database with others.
 */
import type { Generated } from "kysely";

/** Counters handed out under a row lock (the event log's seq, in commit order). */
export interface SequencesTable {
  name: string;
  value: number;
}

export interface TemplatesTable {
  name: string;
  description: string;
  latest_version: number;
  created_at: number;
  updated_at: number;
}

export interface TemplateVersionsTable {
  template_name: string;
  version: number;
  /** JSON of the `TemplateDefinition`. */
  definition: string;
  digest: string;
  created_at: number;
}

export interface NodesTable {
  id: string;
  name: string;
  status: string;
  drain_requested: number;
  labels: string;
  capacity_memory_mb: number;
  capacity_cpu_m: number;
  capacity_disk_mb: number;
  overcommit: number;
  /** capacity × overcommit, precomputed so the reservation check is integer-only. */
  limit_memory_mb: number;
  limit_cpu_m: number;
  limit_disk_mb: number;
  allocated_memory_mb: number;
  allocated_cpu_m: number;
  allocated_disk_mb: number;
  port_from: number;
  port_to: number;
  reserved_ports: string;
  runtimes: string;
  /** JSON: `{ kind, reason, since }[]` of runtimes reported unavailable. */
  unavailable_runtimes: string;
  agent_version: string;
  credential_hash: string;
  last_seen_at: number | null;
  created_at: number;
}

export interface NodeReservationsTable {
  instance_id: string;
  node_id: string;
  memory_mb: number;
  cpu_m: number;
  disk_mb: number;
  /** JSON array of the reserved ports. */
  ports: string;
  created_at: number;
}

export interface PortAllocationsTable {
  node_id: string;
  port: number;
  /** Null for ports the node reserves for its host. */
  instance_id: string | null;
}

export interface InstancesTable {
  id: string;
  name: string;
  template_name: string;
  template_version: number;
  desired_state: string;
  state: string;
  failure: string | null;
  node_id: string | null;
  epoch: number;
  ports: string;
  memory_mb: number;
  cpu_m: number;
  disk_mb: number;
  /** JSON of the non-secret variables. */
  variables: string;
  /** JSON array of the names of secret variables. */
  secret_names: string;
  /** The secret values (JSON), encrypted when a secret key is configured. */
  secret_values: string | null;
  report_seq: number;
  owner: string | null;
  version: number;
  created_at: number;
  updated_at: number;
}

export interface EventsTable {
  /** Assigned in commit order (MySQL: from orch_sequences; SQLite: the rowid). */
  seq: Generated<number>;
  kind: string;
  subject_id: string;
  from_state: string;
  to_state: string;
  at: number;
  reason: string;
  actor_kind: string;
  actor_id: string;
}

export interface CommandsTable {
  /** Insertion order: commands are delivered in it. */
  ordinal: Generated<number>;
  id: string;
  node_id: string;
  instance_id: string;
  type: string;
  payload: string;
  epoch: number;
  status: string;
  attempts: number;
  next_attempt_at: number;
  created_at: number;
  delivered_at: number | null;
  completed_at: number | null;
  result_ok: number | null;
  result_message: string | null;
}

export interface UsersTable {
  id: string;
  username: string;
  /** Lower-cased, NFC-normalised username: uniqueness regardless of letter case. */
  username_key: string;
  role: string;
  disabled: number;
  password_hash: string;
  created_at: number;
}

export interface ApiTokensTable {
  id: string;
  user_id: string;
  name: string;
  scopes: string;
  secret_hash: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
}

export interface SessionsTable {
  id: string;
  user_id: string;
  secret_hash: string;
  created_at: number;
  expires_at: number;
  last_seen_at: number;
  ip: string | null;
  user_agent: string | null;
}

export interface JoinTokensTable {
  id: string;
  secret_hash: string;
  created_by: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  node_id: string | null;
}

export interface AuditLogTable {
  seq: Generated<number>;
  at: number;
  actor_kind: string;
  actor_id: string;
  action: string;
  target: string;
  details: string;
  source: string | null;
}

export interface LeasesTable {
  name: string;
  holder: string;
  epoch: number;
  expires_at: number;
  updated_at: number;
}

export interface PendingPlacementsTable {
  instance_id: string;
  at: number;
  /** JSON: the scheduler's explanation. */
  explanation: string;
}

export interface LiveWatchesTable {
  instance_id: string;
  kind: string;
  watcher: string;
  expires_at: number;
}

export interface LiveItemsTable {
  id: Generated<number>;
  instance_id: string;
  kind: string;
  origin: string;
  /** JSON. */
  payload: string;
  at: number;
}

/** The whole schema (latest migration). */
export interface Database {
  orch_sequences: SequencesTable;
  orch_templates: TemplatesTable;
  orch_template_versions: TemplateVersionsTable;
  orch_nodes: NodesTable;
  orch_node_reservations: NodeReservationsTable;
  orch_port_allocations: PortAllocationsTable;
  orch_instances: InstancesTable;
  orch_events: EventsTable;
  orch_commands: CommandsTable;
  orch_users: UsersTable;
  orch_api_tokens: ApiTokensTable;
  orch_sessions: SessionsTable;
  orch_join_tokens: JoinTokensTable;
  orch_audit_log: AuditLogTable;
  orch_leases: LeasesTable;
  orch_pending_placements: PendingPlacementsTable;
  orch_live_watches: LiveWatchesTable;
  orch_live_items: LiveItemsTable;
}

/** Every table, children before parents (the order to empty them in). */
export const TABLES: readonly (keyof Database)[] = [
  "orch_live_watches",
  "orch_live_items",
  "orch_pending_placements",
  "orch_api_tokens",
  "orch_sessions",
  "orch_users",
  "orch_template_versions",
  "orch_templates",
  "orch_port_allocations",
  "orch_node_reservations",
  "orch_nodes",
  "orch_instances",
  "orch_events",
  "orch_commands",
  "orch_join_tokens",
  "orch_audit_log",
  "orch_leases",
  "orch_sequences",
];
