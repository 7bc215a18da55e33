/**
 * Every schema version, in order. Add a file per version (`0002-<what>.ts`)
 * and list it here; never edit or rename a released one (databases record
 * migrations by name and refuse to run when one they applied is missing).
 */
import type { Migration, MigrationProvider } from "kysely/migration";
import type { SqlFlavorName } from "../sql-flavor.js";
import { initialMigration } from "./0001-initial.js";
import { pendingPlacementsMigration } from "./0002-pending-placements.js";
import { liveRelayMigration } from "./0003-live-relay.js";
import { nodeUnavailableRuntimesMigration } from "./0004-node-unavailable-runtimes.js";

/** The migrations for a dialect, by name (names sort in the order they apply). */
export function migrationsFor(flavor: SqlFlavorName): Record<string, Migration> {
  return {
    "0001-initial": initialMigration(flavor),
    "0002-pending-placements": pendingPlacementsMigration(flavor),
    "0003-live-relay": liveRelayMigration(flavor),
    "0004-node-unavailable-runtimes": nodeUnavailableRuntimesMigration(flavor),
  };
}

/** A kysely migration provider over the migrations bundled in this package. */
export function bundledMigrationProvider(flavor: SqlFlavorName): MigrationProvider {
  return { getMigrations: async () => migrationsFor(flavor) };
}
