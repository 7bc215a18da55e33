/**
 * Version 2: why instances are not placed yet, kept in the database so every
 * Brain replica (not only the one running the scheduling loop) can show it,
 * and it survives a restart. One row per instance, gone with the instance.
 */
import { type Kysely, sql } from "kysely";
import type { SqlFlavorName } from "../sql-flavor.js";

export function pendingPlacementsMigration(flavor: SqlFlavorName) {
  const mysql = flavor === "mysql";
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      let table = db.schema
        .createTable("orch_pending_placements")
        .addColumn("instance_id", "varchar(128)", (c) => c.primaryKey())
        .addColumn("at", mysql ? "bigint" : "integer", (c) => c.notNull())
        .addColumn("explanation", mysql ? sql`mediumtext` : sql`text`, (c) => c.notNull())
        .addForeignKeyConstraint(
          "orch_pending_placements_instance_fk",
          ["instance_id"],
          "orch_instances",
          ["id"],
          (fk) => fk.onDelete("cascade"),
        );
      table = mysql
        ? table.modifyEnd(sql`engine = InnoDB default charset = utf8mb4 collate = utf8mb4_bin`)
        : table.modifyEnd(sql`without rowid`);
      await table.execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable("orch_pending_placements").ifExists().execute();
    },
  };
}
