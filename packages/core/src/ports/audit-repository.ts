import type { Actor } from "../domain/instance-event.js";

export interface AuditEntry {
  seq: number;
  at: Date;
  actor: Actor;
  /** What was done, e.g. `instance.create`, `node.drain`. */
  action: string;
  /** The object acted on, e.g. `instance:inst_123`. */
  target: string;
  /** Client-safe details (never secrets). */
  details: Readonly<Record<string, unknown>>;
}

/** The append-only audit log of every mutating action. */
export interface AuditRepository {
  append(entry: Omit<AuditEntry, "seq">): Promise<AuditEntry>;
  list(options?: { afterSeq?: number; limit?: number; target?: string }): Promise<AuditEntry[]>;
}
