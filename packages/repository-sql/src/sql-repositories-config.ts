import type { Kysely } from "kysely";
import type { Database } from "./schema.js";
import type { RetryPolicy } from "./sql-executor.js";
import type { SqlFlavorName } from "./sql-flavor.js";

/** Options of `new SqlRepositories(...)`. */
export interface SqlRepositoriesConfig {
  /** The kysely instance (SQLite via `createSqliteDialect`, MySQL via `createMysqlDialect`). */
  db: Kysely<Database>;
  /** The dialect; detected from `db` when it uses kysely's SQLite or MySQL adapter. */
  flavor?: SqlFlavorName;
  /**
   * `init()` applies pending migrations (default true). When false, `init()`
   * only checks the schema is current and fails with UNAVAILABLE otherwise
   * (for deployments that migrate as a separate step).
   */
  migrate?: boolean;
  /**
   * Encrypts secret variable values at rest (AES-256-GCM) with a key derived
   * from this secret (at least 32 characters). Without it they are stored as
   * given, but apart from other variables and never listed.
   */
  secretKey?: string | Uint8Array;
  /** Retries of transient failures (deadlock, lock wait timeout, busy). */
  retry?: Partial<RetryPolicy>;
  /** `destroy()` also closes `db` (default false: whoever created `db` closes it). */
  destroyDatabase?: boolean;
  /** Random numbers for backoff jitter (tests make it predictable). */
  random?: () => number;
}
