/**
 * Empties every table and resets the counters, keeping the schema: what test
 * suites on a real server call between tests (DDL such as TRUNCATE is slow on
 * MariaDB; deleting a few rows is not). Never call it on data you want to keep.
 */
import { type Kysely, sql } from "kysely";
import { type Database, TABLES } from "./schema.js";
import { detectFlavor } from "./sql-flavor.js";

export async function clearAllData(db: Kysely<Database>): Promise<void> {
  await db.transaction().execute(async (trx) => {
    for (const table of TABLES) {
      if (table === "orch_sequences") continue;
      await sql`delete from ${sql.table(table)}`.execute(trx);
    }
    await trx.updateTable("orch_sequences").set({ value: 0 }).execute();
    // SQLite's AUTOINCREMENT counters start over too (MySQL's keep going: harmless).
    if (detectFlavor(db as Kysely<unknown>)?.name === "sqlite") {
      await sql`delete from sqlite_sequence`.execute(trx);
    }
  });
}
