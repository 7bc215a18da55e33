/**
 * `@orchestrator/repository-sql`: core's repository ports over kysely, for
 * SQLite (better-sqlite3, embedded) and MySQL/MariaDB (mysql2), with
 * versioned migrations.
 */
export {
  classifyMysqlError,
  classifySqliteError,
  type DatabaseFailure,
  type DatabaseFailureKind,
} from "./classify-error.js";
export { clearAllData } from "./clear-all-data.js";
export {
  type OpenDatabaseOptions,
  openDatabase,
  type ParsedDatabaseUrl,
  parseDatabaseUrl,
} from "./database-url.js";
export { bundledMigrationProvider, migrationsFor } from "./migrations/index.js";
export {
  MIGRATION_LOCK_TABLE,
  MIGRATION_TABLE,
  type MigrationRun,
  type MigrationStatus,
  migrateToLatest,
  migrationStatus,
} from "./migrator.js";
export { createMysqlDialect, mysqlPoolOptions, mysqlPoolOptionsFromUrl } from "./mysql-dialect.js";
export type { MysqlDialectConfig } from "./mysql-dialect-config.js";
export type { Database } from "./schema.js";
export { createSecretCipher, PLAINTEXT_CIPHER, type SecretCipher } from "./secret-cipher.js";
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./sql-executor.js";
export { detectFlavor, type SqlFlavor, type SqlFlavorName } from "./sql-flavor.js";
export { SqlRepositories } from "./sql-repositories.js";
export type { SqlRepositoriesConfig } from "./sql-repositories-config.js";
export { createSqliteDialect, openSqliteDatabase } from "./sqlite-dialect.js";
export type { SqliteDialectConfig } from "./sqlite-dialect-config.js";
