/**
 * The SQLite dialect for kysely over better-sqlite3, tuned for this package:
 * transactions begin IMMEDIATE (the write lock is taken up front, so two
 * processes on one file wait for each other instead of failing with BUSY
 * half-way), DDL runs in transactions (SQLite supports it, so a migration is
 * all-or-nothing and serialised between processes), prepared statements are
 * reused, the file runs in WAL mode with foreign keys on, and checkpoints run
 * in a worker thread once the database is busy (see SqliteCheckpointer).
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import {
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type DialectAdapter,
  type Driver,
  SqliteAdapter,
  type SqliteDatabase,
  SqliteDialect,
  SqliteDriver,
  type SqliteStatement,
} from "kysely";
import { SqliteCheckpointer } from "./sqlite-checkpointer.js";
import type { SqliteDialectConfig } from "./sqlite-dialect-config.js";

export type { SqliteDialectConfig } from "./sqlite-dialect-config.js";

/** A better-sqlite3 database whose `prepare` reuses statements (bounded, least recently used out). */
class StatementCachingDatabase implements SqliteDatabase {
  readonly #db: BetterSqlite3.Database;
  readonly #cache = new Map<string, SqliteStatement>();
  readonly #size: number;
  readonly #checkpointer: SqliteCheckpointer | null;

  constructor(db: BetterSqlite3.Database, size: number, checkpointer: SqliteCheckpointer | null) {
    this.#db = db;
    this.#size = size;
    this.#checkpointer = checkpointer;
  }

  prepare(sql: string): SqliteStatement {
    if (sql === "commit") this.#checkpointer?.committed();
    const cached = this.#cache.get(sql);
    if (cached) {
      this.#cache.delete(sql);
      this.#cache.set(sql, cached);
      return cached;
    }
    const statement = this.#db.prepare(sql) as unknown as SqliteStatement;
    if (this.#size > 0) {
      this.#cache.set(sql, statement);
      if (this.#cache.size > this.#size) {
        const oldest = this.#cache.keys().next().value;
        if (oldest !== undefined) this.#cache.delete(oldest);
      }
    }
    return statement;
  }

  close(): void {
    this.#cache.clear();
    void this.#checkpointer?.close();
    this.#db.close();
  }
}

class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }
}

class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class OrchestratorSqliteDialect extends SqliteDialect {
  readonly #database: () => Promise<SqliteDatabase>;

  constructor(database: () => Promise<SqliteDatabase>) {
    super({ database });
    this.#database = database;
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver({ database: this.#database });
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

/** Opens better-sqlite3 with this package's pragmas. */
export function openSqliteDatabase(config: SqliteDialectConfig): BetterSqlite3.Database {
  const memory = config.filename === ":memory:" || config.filename === "";
  if (!memory) mkdirSync(dirname(config.filename), { recursive: true });
  const db = new BetterSqlite3(memory ? ":memory:" : config.filename, {
    timeout: config.busyTimeoutMs ?? 5000,
  });
  try {
    if (!memory) {
      db.pragma("journal_mode = WAL");
      db.pragma(`synchronous = ${config.synchronous ?? "NORMAL"}`);
      // Each checkpoint syncs the disk (milliseconds on a VM): checkpointing every
      // 40 MiB of WAL instead of SQLite's 4 MiB amortises that over 10× more commits.
      const pages = Math.max(100, Math.floor(config.walAutocheckpointPages ?? 10_000));
      db.pragma(`wal_autocheckpoint = ${pages}`);
      db.pragma(`journal_size_limit = ${pages * 4096 * 2}`);
    }
    db.pragma("foreign_keys = ON");
    // 32 MiB of page cache (the default is 2 MiB): indexes of a busy Brain stay in memory.
    db.pragma("cache_size = -32768");
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/** A kysely dialect over a better-sqlite3 database file (or `:memory:`), opened on first use. */
export function createSqliteDialect(config: SqliteDialectConfig): Dialect {
  const size = config.statementCacheSize ?? 256;
  const memory = config.filename === ":memory:" || config.filename === "";
  return new OrchestratorSqliteDialect(async () => {
    const db = openSqliteDatabase(config);
    const checkpointer =
      memory || config.backgroundCheckpoints === false
        ? null
        : new SqliteCheckpointer({ filename: db.name });
    return new StatementCachingDatabase(db, size, checkpointer);
  });
}
