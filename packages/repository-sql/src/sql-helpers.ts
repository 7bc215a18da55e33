/** Small SQL building blocks shared by the repositories, where the dialects differ. */
import type { ConflictError } from "@orchestrator/core";
import { type Expression, sql } from "kysely";
import { failureOf } from "./classify-error.js";
import type { SqlScope } from "./sql-executor.js";

/** Adds `FOR UPDATE` inside a MySQL transaction (SQLite's single writer needs no row locks). */
export function forUpdate<Q extends { forUpdate(): Q }>(scope: SqlScope, query: Q): Q {
  return scope.inTransaction && scope.flavor.lockingReads ? query.forUpdate() : query;
}

/**
 * Adds `LOCK IN SHARE MODE` inside a MySQL transaction: the row cannot change
 * until the transaction ends, yet other transactions may share it.
 */
export function forShare<Q extends { modifyEnd(modifier: Expression<unknown>): Q }>(
  scope: SqlScope,
  query: Q,
): Q {
  return scope.inTransaction && scope.flavor.lockingReads
    ? query.modifyEnd(sql`lock in share mode`)
    : query;
}

/** True for a duplicate-key CONFLICT produced by the error classification. */
export function isDuplicate(error: unknown): error is ConflictError {
  return failureOf(error)?.reason === "duplicate";
}

/** Rows affected by an update or delete (kysely returns bigints). */
export function affected(result: {
  numUpdatedRows?: bigint;
  numDeletedRows?: bigint;
  numAffectedRows?: bigint;
}): number {
  return Number(result.numUpdatedRows ?? result.numDeletedRows ?? result.numAffectedRows ?? 0n);
}
