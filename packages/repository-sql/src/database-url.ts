/**
 * `ORCH_DATABASE_URL`-style connection strings: `sqlite:<path>`,
 * `sqlite::memory:`, `mysql://user:password@host:port/database`.
 */
import { ValidationError } from "@orchestrator/core";
import { Kysely } from "kysely";
import { createMysqlDialect } from "./mysql-dialect.js";
import type { MysqlDialectConfig } from "./mysql-dialect-config.js";
import type { Database } from "./schema.js";
import type { SqlFlavorName } from "./sql-flavor.js";
import { createSqliteDialect } from "./sqlite-dialect.js";
import type { SqliteDialectConfig } from "./sqlite-dialect-config.js";

export type ParsedDatabaseUrl =
  | { flavor: "sqlite"; filename: string }
  | { flavor: "mysql"; url: string };

/** Reads a database URL; VALIDATION_FAILED when it is neither SQLite nor MySQL. */
export function parseDatabaseUrl(url: string): ParsedDatabaseUrl {
  const text = typeof url === "string" ? url.trim() : "";
  if (text.startsWith("sqlite:")) {
    let filename = text.slice("sqlite:".length);
    if (filename.startsWith("//")) filename = filename.slice(2);
    if (filename === "" || filename === ":memory:" || filename === "memory") {
      return { flavor: "sqlite", filename: ":memory:" };
    }
    return { flavor: "sqlite", filename };
  }
  if (text.startsWith("mysql://") || text.startsWith("mariadb://")) {
    let host = "";
    try {
      host = new URL(text).hostname;
    } catch {
      // reported below
    }
    if (!host) {
      throw new ValidationError([
        { path: "databaseUrl", message: "is not a valid mysql://user:password@host/database URL" },
      ]);
    }
    return { flavor: "mysql", url: text };
  }
  throw new ValidationError([
    {
      path: "databaseUrl",
      message: "must start with sqlite: (e.g. sqlite:./data/orchestrator.db) or mysql://",
    },
  ]);
}

/** Options passed on to the dialect `openDatabase` creates. */
export interface OpenDatabaseOptions {
  sqlite?: Omit<SqliteDialectConfig, "filename">;
  mysql?: Omit<MysqlDialectConfig, "url">;
}

/** A kysely instance for a database URL (connections open on first use). */
export function openDatabase(
  url: string,
  options: OpenDatabaseOptions = {},
): { db: Kysely<Database>; flavor: SqlFlavorName } {
  const parsed = parseDatabaseUrl(url);
  if (parsed.flavor === "sqlite") {
    return {
      db: new Kysely<Database>({
        dialect: createSqliteDialect({ ...options.sqlite, filename: parsed.filename }),
      }),
      flavor: "sqlite",
    };
  }
  return {
    db: new Kysely<Database>({
      dialect: createMysqlDialect({ ...options.mysql, url: parsed.url }),
    }),
    flavor: "mysql",
  };
}
