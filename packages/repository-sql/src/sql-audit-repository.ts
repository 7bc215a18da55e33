/** The append-only audit log (no update or delete is offered). */
import type { Actor, AuditEntry, AuditFilter, AuditRepository, Page } from "@orchestrator/core";
import {
  checkActor,
  checkDate,
  checkInt,
  checkNullableString,
  checkString,
  decodeCursor,
  encodeCursor,
  fromJson,
  invalid,
  MAX_ID,
  MAX_NAME,
  num,
  toDate,
  toJson,
} from "./codec.js";
import { PreparedQuery, pick } from "./prepared-query.js";
import type { AuditLogTable } from "./schema.js";
import type { SqlScope } from "./sql-executor.js";

type AuditRow = Omit<AuditLogTable, "seq"> & { seq: number };

// Every mutating API call appends one: compiled once (see PreparedQuery).
const INSERT = new PreparedQuery<Omit<AuditLogTable, "seq">, never>((db, args) =>
  db
    .insertInto("orch_audit_log")
    .values(pick(args, ["at", "actor_kind", "actor_id", "action", "target", "details", "source"])),
);

function toEntry(row: AuditRow): AuditEntry {
  return {
    seq: num(row.seq),
    at: toDate(row.at),
    actor: { kind: row.actor_kind as Actor["kind"], id: row.actor_id },
    action: row.action,
    target: row.target,
    details: fromJson(row.details, {}),
    source: row.source,
  };
}

export class SqlAuditRepository implements AuditRepository {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  async append(
    entry: Omit<AuditEntry, "seq" | "source"> & { source?: string | null },
  ): Promise<AuditEntry> {
    checkActor("actor", entry.actor);
    if (typeof entry.details !== "object" || entry.details === null) {
      throw invalid("details", "must be an object");
    }
    const details = toJson(entry.details);
    if (details.length > 65_535) throw invalid("details", "is too large");
    const row = {
      at: checkDate("at", entry.at),
      actor_kind: entry.actor.kind,
      actor_id: entry.actor.id,
      action: checkString("action", entry.action, 128),
      target: checkString("target", entry.target, MAX_NAME),
      details,
      source: checkNullableString("source", entry.source, MAX_NAME),
    };
    const result = await this.#scope.write((db) => INSERT.execute(db, row));
    return toEntry({ ...row, seq: Number(result.insertId) });
  }

  async list(filter: AuditFilter = {}): Promise<Page<AuditEntry>> {
    const limit = checkInt("limit", filter.limit ?? 100, 1, 1000);
    const before =
      filter.before === undefined
        ? undefined
        : (decodeCursor("before", filter.before, ["number"])[0] as number);
    const rows = await this.#scope.read((db) => {
      let query = db.selectFrom("orch_audit_log").selectAll();
      if (before !== undefined) query = query.where("seq", "<", before);
      if (filter.target !== undefined) query = query.where("target", "=", filter.target);
      if (filter.actorId !== undefined) {
        query = query.where("actor_id", "=", checkString("actorId", filter.actorId, MAX_ID));
      }
      if (filter.action !== undefined) query = query.where("action", "=", filter.action);
      return query
        .orderBy("seq", "desc")
        .limit(limit + 1)
        .execute();
    });
    const more = rows.length > limit;
    const items = (more ? rows.slice(0, limit) : rows).map(toEntry);
    const last = items.at(-1);
    return { items, next: more && last ? encodeCursor([last.seq]) : null };
  }
}
