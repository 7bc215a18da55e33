/**
 * The event log. Seqs are handed out in commit order, so a reader resuming
 * after seq N can never miss a smaller seq committed later. MySQL: the seq
 * comes from a counter row updated in the appending transaction, whose row
 * lock is held until commit (an AUTO_INCREMENT column would allow exactly
 * that gap). SQLite: one writer at a time holds the database from BEGIN to
 * COMMIT, so the rowid SQLite assigns is already in commit order.
 */
import {
  type Actor,
  type EventRepository,
  INSTANCE_STATES,
  type InstanceEvent,
  type InstanceState,
  type LoggedEvent,
  NODE_STATUSES,
  type NodeEvent,
  type NodeStatus,
} from "@orchestrator/core";
import { type Kysely, sql } from "kysely";
import {
  checkActor,
  checkDate,
  checkInt,
  checkOneOf,
  checkString,
  MAX_ID,
  MAX_TEXT,
  num,
  toDate,
} from "./codec.js";
import { PreparedQuery, pick } from "./prepared-query.js";
import type { Database, EventsTable } from "./schema.js";
import type { SqlScope } from "./sql-executor.js";

type EventRow = Omit<EventsTable, "seq"> & { seq: number };

const EVENTS_SEQUENCE = "events";
const DEFERRED_EVENTS = "orch_events";
/** Rows per multi-row INSERT of deferred events. */
const EVENTS_PER_INSERT = 200;

// Every lifecycle change appends: these are compiled once (see PreparedQuery).
// MySQL: LAST_INSERT_ID(expr) hands the new value back in the UPDATE's own
// reply (the classic MySQL sequence idiom): one round trip, row lock held.
const NEXT_VALUE_MYSQL = new PreparedQuery<{ name: string }, never>((db, args) =>
  db
    .updateTable("orch_sequences")
    .set({ value: sql<number>`last_insert_id(value + 1)` })
    .where("name", "=", args.name),
);
// MySQL, with the seq taken from the counter.
const INSERT_EVENT_AT_SEQ = new PreparedQuery<EventRow, never>((db, args) =>
  db
    .insertInto("orch_events")
    .values(
      pick(args, [
        "seq",
        "kind",
        "subject_id",
        "from_state",
        "to_state",
        "at",
        "reason",
        "actor_kind",
        "actor_id",
      ]),
    ),
);
// SQLite: the rowid is the seq.
const INSERT_EVENT_ROWID = new PreparedQuery<Omit<EventsTable, "seq">, never>((db, args) =>
  db
    .insertInto("orch_events")
    .values(
      pick(args, [
        "kind",
        "subject_id",
        "from_state",
        "to_state",
        "at",
        "reason",
        "actor_kind",
        "actor_id",
      ]),
    ),
);

function actorOf(row: EventRow): Actor {
  return { kind: row.actor_kind as Actor["kind"], id: row.actor_id };
}

function toInstanceEvent(row: EventRow): InstanceEvent {
  return {
    seq: num(row.seq),
    instanceId: row.subject_id,
    from: row.from_state as InstanceState,
    to: row.to_state as InstanceState,
    at: toDate(row.at),
    reason: row.reason,
    actor: actorOf(row),
  };
}

function toNodeEvent(row: EventRow): NodeEvent {
  return {
    seq: num(row.seq),
    nodeId: row.subject_id,
    from: row.from_state as NodeStatus,
    to: row.to_state as NodeStatus,
    at: toDate(row.at),
    reason: row.reason,
    actor: actorOf(row),
  };
}

function toLogged(row: EventRow): LoggedEvent {
  return row.kind === "node"
    ? { kind: "node", ...toNodeEvent(row) }
    : { kind: "instance", ...toInstanceEvent(row) };
}

/** MySQL: the deferred events of a transaction, in multi-row INSERTs. */
async function insertEvents(scope: SqlScope, rows: EventRow[]): Promise<void> {
  for (let start = 0; start < rows.length; start += EVENTS_PER_INSERT) {
    const chunk = rows.slice(start, start + EVENTS_PER_INSERT);
    if (chunk.length === 1) await scope.write((db) => INSERT_EVENT_AT_SEQ.execute(db, chunk[0]!));
    else await scope.write((db) => db.insertInto("orch_events").values(chunk).execute());
  }
}

const SET_VALUE_MYSQL = new PreparedQuery<{ name: string; value: number }, never>((db, args) =>
  db.updateTable("orch_sequences").set({ value: args.value }).where("name", "=", args.name),
);

/**
 * Takes the next value of a counter (MySQL); the row stays locked until the
 * transaction ends. In a transaction, only the first value is taken from the
 * row: the lock makes the following ones this transaction's to hand out, and
 * the row is written once, just before the commit (one round trip per value
 * saved, and the lock is held that much shorter).
 */
export async function nextSequenceValue(scope: SqlScope, name: string): Promise<number> {
  const key = `sequence:${name}`;
  const held = scope.inTransaction ? (scope.memo.get(key) as HeldSequence | undefined) : undefined;
  if (held) {
    held.value += 1;
    return held.value;
  }
  const result = await scope.write((db) => NEXT_VALUE_MYSQL.execute(db, { name }));
  if (result.insertId === undefined) throw new Error(`sequence '${name}' is missing`);
  const value = Number(result.insertId);
  if (scope.inTransaction) {
    const taken: HeldSequence = { value };
    scope.memo.set(key, taken);
    scope.beforeCommit(async () => {
      // Absolute, not an increment: right even if a savepoint undid the first UPDATE.
      if (taken.value !== value) {
        await scope.write((db) => SET_VALUE_MYSQL.execute(db, { name, value: taken.value }));
      }
    });
  }
  return value;
}

interface HeldSequence {
  value: number;
}

export class SqlEventRepository implements EventRepository {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  async append(event: Omit<InstanceEvent, "seq">): Promise<InstanceEvent> {
    const row = await this.#insert({
      kind: "instance",
      subject_id: checkString("instanceId", event.instanceId, MAX_ID),
      from_state: checkOneOf("from", event.from, INSTANCE_STATES),
      to_state: checkOneOf("to", event.to, INSTANCE_STATES),
      at: checkDate("at", event.at),
      reason: checkString("reason", event.reason, MAX_TEXT, 0),
      ...this.#actor(event.actor),
    });
    return toInstanceEvent(row);
  }

  async appendNodeEvent(event: Omit<NodeEvent, "seq">): Promise<NodeEvent> {
    const row = await this.#insert({
      kind: "node",
      subject_id: checkString("nodeId", event.nodeId, MAX_ID),
      from_state: checkOneOf("from", event.from, NODE_STATUSES),
      to_state: checkOneOf("to", event.to, NODE_STATUSES),
      at: checkDate("at", event.at),
      reason: checkString("reason", event.reason, MAX_TEXT, 0),
      ...this.#actor(event.actor),
    });
    return toNodeEvent(row);
  }

  async listAfter(afterSeq: number, limit: number): Promise<LoggedEvent[]> {
    const after = checkInt("afterSeq", afterSeq, 0, Number.MAX_SAFE_INTEGER);
    const max = checkInt("limit", limit, 1, 10_000);
    const rows = await this.#read((db) =>
      db
        .selectFrom("orch_events")
        .selectAll()
        .where("seq", ">", after)
        .orderBy("seq")
        .limit(max)
        .execute(),
    );
    return rows.map(toLogged);
  }

  async listForInstance(
    instanceId: string,
    options: { afterSeq?: number; limit?: number } = {},
  ): Promise<InstanceEvent[]> {
    const after = checkInt("afterSeq", options.afterSeq ?? 0, 0, Number.MAX_SAFE_INTEGER);
    const limit =
      options.limit === undefined ? undefined : checkInt("limit", options.limit, 1, 10_000);
    const rows = await this.#read((db) => {
      let query = db
        .selectFrom("orch_events")
        .selectAll()
        .where("subject_id", "=", instanceId)
        .where("kind", "=", "instance")
        .where("seq", ">", after)
        .orderBy("seq");
      if (limit !== undefined) query = query.limit(limit);
      return query.execute();
    });
    return rows.map(toInstanceEvent);
  }

  async lastSeq(): Promise<number> {
    if (this.#scope.flavor.name === "sqlite") {
      const row = await this.#read((db) =>
        db
          .selectFrom("orch_events")
          .select((eb) => eb.fn.max("seq").as("value"))
          .executeTakeFirst(),
      );
      return row?.value ? num(row.value) : 0;
    }
    // The counter only moves in committing transactions: its committed value is the last seq
    // (in a transaction that appended, the last one it handed out).
    const held = this.#scope.inTransaction
      ? (this.#scope.memo.get(`sequence:${EVENTS_SEQUENCE}`) as HeldSequence | undefined)
      : undefined;
    if (held) return held.value;
    const row = await this.#read((db) =>
      db
        .selectFrom("orch_sequences")
        .select("value")
        .where("name", "=", EVENTS_SEQUENCE)
        .executeTakeFirst(),
    );
    return row ? num(row.value) : 0;
  }

  /** Reads, after writing this transaction's deferred events (so they are seen). */
  async #read<T>(query: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    if (this.#scope.inTransaction) await this.#scope.flushDeferred(DEFERRED_EVENTS);
    return this.#scope.read(query);
  }

  #actor(actor: Actor): { actor_kind: string; actor_id: string } {
    checkActor("actor", actor);
    return { actor_kind: actor.kind, actor_id: actor.id };
  }

  async #insert(values: Omit<EventsTable, "seq">): Promise<EventRow> {
    if (this.#scope.flavor.name === "sqlite") {
      const result = await this.#scope.write((db) => INSERT_EVENT_ROWID.execute(db, values));
      return { seq: Number(result.insertId), ...values };
    }
    return this.#scope.atomic(async (scope) => {
      const seq = await nextSequenceValue(scope, EVENTS_SEQUENCE);
      const row: EventRow = { seq, ...values };
      // The seq is this transaction's (its counter row is locked): the insert
      // cannot be refused, so it waits for the others, one statement for all.
      scope.defer(DEFERRED_EVENTS, row, insertEvents);
      return row;
    });
  }
}
