/**
 * The command outbox. Commands are delivered in insertion order (`ordinal`),
 * claimed atomically (MySQL: `FOR UPDATE SKIP LOCKED`, so two Brains serving
 * one node never hand out the same command in one round), redelivered until a
 * result arrives, and the first result wins.
 */
import {
  COMMAND_TYPES,
  type CommandOutbox,
  type CommandResult,
  type CommandStatus,
  type CommandType,
  type NewCommand,
  NotFoundError,
  type OutboxCommand,
} from "@orchestrator/core";
import {
  bool,
  checkDate,
  checkInt,
  checkOneOf,
  checkString,
  fromJson,
  invalid,
  MAX_ID,
  MAX_TEXT,
  num,
  toDate,
  toDateOrNull,
  toJson,
} from "./codec.js";
import { PreparedQuery, pick } from "./prepared-query.js";
import type { CommandsTable } from "./schema.js";
import type { SqlScope } from "./sql-executor.js";
import { affected } from "./sql-helpers.js";

/** Largest serialised payload (16 MiB, MySQL MEDIUMTEXT). */
const MAX_PAYLOAD = 16 * 1024 * 1024 - 1;

type CommandRow = Omit<CommandsTable, "ordinal"> & { ordinal: number };
type NewCommandRow = Omit<CommandRow, "ordinal">;

const INSERT = new PreparedQuery<NewCommandRow, never>((db, args) =>
  db
    .insertInto("orch_commands")
    .values(
      pick(args, [
        "id",
        "node_id",
        "instance_id",
        "type",
        "payload",
        "epoch",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
        "delivered_at",
        "completed_at",
        "result_ok",
        "result_message",
      ]),
    ),
);

function toCommand(row: CommandRow): OutboxCommand {
  return {
    id: row.id,
    nodeId: row.node_id,
    instanceId: row.instance_id,
    type: row.type as CommandType,
    payload: fromJson(row.payload, {}),
    epoch: num(row.epoch),
    status: row.status as CommandStatus,
    attempts: num(row.attempts),
    nextAttemptAt: toDate(row.next_attempt_at),
    createdAt: toDate(row.created_at),
    result:
      row.result_ok === null
        ? null
        : { ok: bool(row.result_ok), message: row.result_message ?? null },
    deliveredAt: toDateOrNull(row.delivered_at),
    completedAt: toDateOrNull(row.completed_at),
  };
}

export class SqlCommandOutbox implements CommandOutbox {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  async enqueue(command: NewCommand, at: Date): Promise<OutboxCommand> {
    if (typeof command !== "object" || command === null) throw invalid("", "must be an object");
    if (typeof command.payload !== "object" || command.payload === null) {
      throw invalid("payload", "must be an object");
    }
    const payload = toJson(command.payload);
    if (payload.length > MAX_PAYLOAD) throw invalid("payload", "is too large");
    const now = checkDate("at", at);
    const row: NewCommandRow = {
      id: checkString("id", command.id, MAX_ID),
      node_id: checkString("nodeId", command.nodeId, MAX_ID),
      instance_id: checkString("instanceId", command.instanceId, MAX_ID),
      type: checkOneOf("type", command.type, COMMAND_TYPES),
      payload,
      epoch: checkInt("epoch", command.epoch, 0, 2 ** 31 - 1),
      status: "pending",
      attempts: 0,
      next_attempt_at: now,
      created_at: now,
      delivered_at: null,
      completed_at: null,
      result_ok: null,
      result_message: null,
    };
    await this.#scope.write((db) => INSERT.execute(db, row));
    return toCommand({ ...row, ordinal: 0 });
  }

  async get(id: string): Promise<OutboxCommand | null> {
    const row = await this.#scope.read((db) =>
      db.selectFrom("orch_commands").selectAll().where("id", "=", id).executeTakeFirst(),
    );
    return row ? toCommand(row) : null;
  }

  async claimDue(
    nodeId: string,
    options: { now: Date; limit: number; redeliverAt: Date },
  ): Promise<OutboxCommand[]> {
    const now = checkDate("now", options.now);
    const redeliverAt = checkDate("redeliverAt", options.redeliverAt);
    const limit = checkInt("limit", options.limit, 1, 10_000);
    return this.#scope.atomic(async (scope) => {
      const rows = await scope.read((db) => {
        const query = db
          .selectFrom("orch_commands")
          .selectAll()
          .where("node_id", "=", nodeId)
          // Open = no result yet (pending or delivered): the due index's order.
          .where("completed_at", "is", null)
          .where("next_attempt_at", "<=", now)
          .orderBy("ordinal")
          .limit(limit);
        return (scope.flavor.lockingReads ? query.forUpdate().skipLocked() : query).execute();
      });
      if (rows.length === 0) return [];
      await scope.write((db) =>
        db
          .updateTable("orch_commands")
          .set((eb) => ({
            status: "delivered",
            attempts: eb("attempts", "+", 1),
            delivered_at: now,
            next_attempt_at: redeliverAt,
          }))
          .where(
            "ordinal",
            "in",
            rows.map((row) => row.ordinal),
          )
          .execute(),
      );
      return rows.map((row) =>
        toCommand({
          ...row,
          status: "delivered",
          attempts: num(row.attempts) + 1,
          delivered_at: now,
          next_attempt_at: redeliverAt,
        }),
      );
    });
  }

  async complete(
    id: string,
    result: CommandResult,
    at: Date,
    options: { nodeId?: string } = {},
  ): Promise<{ command: OutboxCommand; first: boolean }> {
    if (typeof result !== "object" || result === null || typeof result.ok !== "boolean") {
      throw invalid("result.ok", "must be a boolean");
    }
    const message =
      result.message === undefined
        ? null
        : checkString("result.message", result.message, MAX_TEXT, 0);
    const completedAt = checkDate("at", at);
    const updated = await this.#scope.write((db) => {
      let query = db
        .updateTable("orch_commands")
        .set({
          status: result.ok ? "succeeded" : "failed",
          result_ok: result.ok ? 1 : 0,
          result_message: message,
          completed_at: completedAt,
        })
        .where("id", "=", id)
        .where("completed_at", "is", null);
      if (options.nodeId !== undefined) query = query.where("node_id", "=", options.nodeId);
      return query.executeTakeFirst();
    });
    const command = await this.get(id);
    // Another node's command is reported as unknown: nothing leaks across nodes.
    if (!command || (options.nodeId !== undefined && command.nodeId !== options.nodeId)) {
      throw new NotFoundError("command", id);
    }
    return { command, first: affected(updated) > 0 };
  }

  async expire(options: {
    now: Date;
    maxAttempts: number;
    createdBefore?: Date;
  }): Promise<OutboxCommand[]> {
    const now = checkDate("now", options.now);
    const maxAttempts = checkInt("maxAttempts", options.maxAttempts, 1, 1_000_000);
    const createdBefore =
      options.createdBefore === undefined
        ? undefined
        : checkDate("createdBefore", options.createdBefore);
    return this.#scope.atomic(async (scope) => {
      const rows = await scope.read((db) => {
        const query = db
          .selectFrom("orch_commands")
          .selectAll()
          .where("completed_at", "is", null)
          .where((eb) => {
            const exhausted = eb.and([
              eb("status", "=", "delivered"),
              eb("attempts", ">=", maxAttempts),
              eb("next_attempt_at", "<=", now),
            ]);
            return createdBefore === undefined
              ? exhausted
              : eb.or([exhausted, eb("created_at", "<", createdBefore)]);
          })
          .orderBy("ordinal")
          .limit(1000);
        return (scope.flavor.lockingReads ? query.forUpdate().skipLocked() : query).execute();
      });
      if (rows.length === 0) return [];
      const expired = rows.map((row) => ({
        ...row,
        status: "failed",
        result_ok: 0,
        result_message: `expired: no result after ${num(row.attempts)} deliveries`,
        completed_at: now,
      }));
      for (const row of expired) {
        await scope.write((db) =>
          db
            .updateTable("orch_commands")
            .set({
              status: row.status,
              result_ok: row.result_ok,
              result_message: row.result_message,
              completed_at: row.completed_at,
            })
            .where("ordinal", "=", row.ordinal)
            .execute(),
        );
      }
      return expired.map(toCommand);
    });
  }

  async listForInstance(
    instanceId: string,
    options: { limit?: number } = {},
  ): Promise<OutboxCommand[]> {
    const limit =
      options.limit === undefined ? undefined : checkInt("limit", options.limit, 1, 10_000);
    const rows = await this.#scope.read((db) => {
      let query = db
        .selectFrom("orch_commands")
        .selectAll()
        .where("instance_id", "=", instanceId)
        .orderBy("ordinal");
      if (limit !== undefined) query = query.limit(limit);
      return query.execute();
    });
    return rows.map(toCommand);
  }

  async countByStatus(): Promise<Partial<Record<CommandStatus, number>>> {
    const rows = await this.#scope.read((db) =>
      db
        .selectFrom("orch_commands")
        .select(["status", (eb) => eb.fn.countAll().as("count")])
        .groupBy("status")
        .execute(),
    );
    return Object.fromEntries(rows.map((row) => [row.status, num(row.count)]));
  }
}
