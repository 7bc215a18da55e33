import type { Actor } from "../domain/instance-event.js";
import type { Page } from "./repositories.js";

/** One entry of the audit log: who did what, to what, when, and from where. */
export interface AuditEntry {
  /** Increasing with time; the cursor of `list`. */
  seq: number;
  at: Date;
  actor: Actor;
  /** What was done, e.g. `instance.create`, `node.drain`. */
  action: string;
  /** The object acted on, e.g. `instance:inst_123`. */
  target: string;
  /** Client-safe details (never secrets). */
  details: Readonly<Record<string, unknown>>;
  /** Where the request came from (client address), when known. */
  source: string | null;
}

/** Which audit entries to list; every given criterion must hold. */
export interface AuditFilter {
  /** Only entries older than this seq (the `next` of a previous page). */
  before?: string;
  /** Page size (1..1,000, default 100). */
  limit?: number;
  target?: string;
  actorId?: string;
  action?: string;
}

/** The append-only audit log of every mutating action. */
export interface AuditRepository {
  /** Appends an entry and returns it with its `seq`. */
  append(
    entry: Omit<AuditEntry, "seq" | "source"> & { source?: string | null },
  ): Promise<AuditEntry>;
  /** Entries matching `filter`, newest first, one page at a time. */
  list(filter?: AuditFilter): Promise<Page<AuditEntry>>;
}
