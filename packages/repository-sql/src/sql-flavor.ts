/**
 * What differs between the SQL dialects this package supports, in one small
 * object: error classification and whether locking reads exist. Everything
 * else is the same kysely code.
 */
import { type Kysely, MysqlAdapter, SqliteAdapter } from "kysely";
import { classifyMysqlError, classifySqliteError, type DatabaseFailure } from "./classify-error.js";

export type SqlFlavorName = "sqlite" | "mysql";

export interface SqlFlavor {
  readonly name: SqlFlavorName;
  /**
   * `SELECT ... FOR UPDATE [SKIP LOCKED]` exists (MySQL/MariaDB). SQLite has
   * one writer at a time (transactions begin IMMEDIATE), which gives the same
   * guarantees without row locks.
   */
  readonly lockingReads: boolean;
  /** Classifies a driver error of this dialect, or null when it is not one. */
  classify(error: unknown): DatabaseFailure | null;
}

export const SQLITE_FLAVOR: SqlFlavor = {
  name: "sqlite",
  lockingReads: false,
  classify: classifySqliteError,
};

export const MYSQL_FLAVOR: SqlFlavor = {
  name: "mysql",
  lockingReads: true,
  classify: classifyMysqlError,
};

export function flavorNamed(name: SqlFlavorName): SqlFlavor {
  return name === "sqlite" ? SQLITE_FLAVOR : MYSQL_FLAVOR;
}

/**
 * The flavor of a kysely instance, from its dialect adapter; null for a
 * dialect this package does not know (pass `flavor` explicitly then).
 */
export function detectFlavor(db: Kysely<unknown>): SqlFlavor | null {
  const adapter = db.getExecutor().adapter;
  if (adapter instanceof SqliteAdapter) return SQLITE_FLAVOR;
  if (adapter instanceof MysqlAdapter) return MYSQL_FLAVOR;
  return null;
}
