/**
 * Migrations (the Flyway role): `migrateToLatest` applies what is missing,
 * holding a lock so two Brains starting together never race (MySQL:
 * `GET_LOCK`; SQLite: the migration runs in one `BEGIN IMMEDIATE`
 * transaction, so a second process waits and then finds nothing to do).
 * Both functions are usable from a CLI (`orchestrator migrate`, `... status`).
 */
import { OrchestratorError, UnavailableError } from "@orchestrator/core";
import type { Kysely } from "kysely";
import { type MigrationResult, Migrator } from "kysely/migration";
import { bundledMigrationProvider, migrationsFor } from "./migrations/index.js";
import type { Database } from "./schema.js";
import { detectFlavor, type SqlFlavor } from "./sql-flavor.js";

/** Where applied migrations are recorded. */
export const MIGRATION_TABLE = "orch_migrations";
export const MIGRATION_LOCK_TABLE = "orch_migration_lock";

/** What `migrateToLatest` did. */
export interface MigrationRun {
  /** Migrations applied by this call, in order (empty when already up to date). */
  applied: string[];
  /** The latest applied migration afterwards. */
  current: string | null;
}

/** Where a database stands. */
export interface MigrationStatus {
  /** The latest migration applied, or null for an empty database. */
  current: string | null;
  /** The latest migration this version of the package knows. */
  latest: string;
  /** Known migrations not applied yet, in order. */
  pending: string[];
  /** Applied migrations, in order, with when they ran. */
  applied: { name: string; executedAt: Date }[];
  /** Migrations the database has that this version does not know (it was migrated by a newer one). */
  unknown: string[];
  /** True when nothing is pending and nothing is unknown. */
  upToDate: boolean;
}

function flavorOf(db: Kysely<Database>, flavor?: SqlFlavor): SqlFlavor {
  const resolved = flavor ?? detectFlavor(db as Kysely<unknown>);
  if (!resolved) {
    throw new OrchestratorError(
      "INTERNAL",
      "unknown SQL dialect: pass `flavor` (sqlite or mysql) explicitly",
    );
  }
  return resolved;
}

function migrator(db: Kysely<Database>, flavor: SqlFlavor): Migrator {
  return new Migrator({
    db,
    provider: bundledMigrationProvider(flavor.name),
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
}

async function appliedNames(db: Kysely<Database>): Promise<{ name: string; executedAt: Date }[]> {
  const tables = await db.introspection.getTables();
  if (!tables.some((table) => table.name === MIGRATION_TABLE)) return [];
  const untyped = db as unknown as Kysely<Record<string, { name: string; timestamp: string }>>;
  const rows = await untyped
    .selectFrom(MIGRATION_TABLE)
    .select(["name", "timestamp"])
    .orderBy("name")
    .execute();
  return rows.map((row) => ({ name: row.name, executedAt: new Date(row.timestamp) }));
}

/** Where the database stands compared with this version's migrations. */
export async function migrationStatus(
  db: Kysely<Database>,
  options: { flavor?: SqlFlavor } = {},
): Promise<MigrationStatus> {
  const flavor = flavorOf(db, options.flavor);
  const known = Object.keys(migrationsFor(flavor.name)).sort();
  let applied: { name: string; executedAt: Date }[];
  try {
    applied = await appliedNames(db);
  } catch (error) {
    throw new UnavailableError("cannot read the migration status", { cause: error });
  }
  const appliedSet = new Set(applied.map((row) => row.name));
  const knownSet = new Set(known);
  const pending = known.filter((name) => !appliedSet.has(name));
  const unknown = applied.map((row) => row.name).filter((name) => !knownSet.has(name));
  return {
    current: applied.at(-1)?.name ?? null,
    latest: known.at(-1) ?? "",
    pending,
    applied,
    unknown,
    upToDate: pending.length === 0 && unknown.length === 0,
  };
}

/**
 * Applies every pending migration, under the migration lock. Throws
 * UNAVAILABLE (with the failed migration in `details`) when one fails; on
 * MySQL, DDL is not transactional, so a failed migration may leave part of
 * its changes (migrations are written to be re-runnable up to their failure).
 */
export async function migrateToLatest(
  db: Kysely<Database>,
  options: { flavor?: SqlFlavor } = {},
): Promise<MigrationRun> {
  const flavor = flavorOf(db, options.flavor);
  const before = await migrationStatus(db, { flavor });
  if (before.unknown.length > 0) {
    throw new OrchestratorError(
      "INTERNAL",
      `the database was migrated by a newer version (unknown migrations: ${before.unknown.join(", ")}); upgrade this program`,
      { details: { unknown: before.unknown } },
    );
  }
  const { error, results = [] } = await migrator(db, flavor).migrateToLatest();
  const applied = results
    .filter((result: MigrationResult) => result.status === "Success")
    .map((result) => result.migrationName);
  if (error !== undefined) {
    const failed = results.find((result) => result.status === "Error")?.migrationName ?? null;
    throw new UnavailableError(failed ? `migration ${failed} failed` : "migrations could not run", {
      cause: error,
      details: { failed, applied },
      retryable: false,
    });
  }
  const after = await migrationStatus(db, { flavor });
  return { applied, current: after.current };
}
