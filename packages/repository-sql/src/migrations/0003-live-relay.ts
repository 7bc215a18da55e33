/**
 * Version 3: the live relay between Brain replicas (log lines and stats
 * samples that reach one replica while the viewer is on another). Both tables
 * stay small: declarations expire within seconds, items are pruned within seconds.
 */
import { type Kysely, sql } from "kysely";
import type { SqlFlavorName } from "../sql-flavor.js";

export function liveRelayMigration(flavor: SqlFlavorName) {
  const mysql = flavor === "mysql";
  const bigint = mysql ? "bigint" : "integer";
  const engine = sql`engine = InnoDB default charset = utf8mb4 collate = utf8mb4_bin`;
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      const watches = db.schema
        .createTable("orch_live_watches")
        .addColumn("instance_id", "varchar(128)", (c) => c.notNull())
        .addColumn("kind", "varchar(16)", (c) => c.notNull())
        .addColumn("watcher", "varchar(255)", (c) => c.notNull())
        .addColumn("expires_at", bigint, (c) => c.notNull())
        .addPrimaryKeyConstraint("orch_live_watches_pk", ["instance_id", "kind", "watcher"]);
      await (mysql ? watches.modifyEnd(engine) : watches.modifyEnd(sql`without rowid`)).execute();

      const items = db.schema
        .createTable("orch_live_items")
        .addColumn("id", bigint, (c) => c.primaryKey().autoIncrement())
        .addColumn("instance_id", "varchar(128)", (c) => c.notNull())
        .addColumn("kind", "varchar(16)", (c) => c.notNull())
        .addColumn("origin", "varchar(255)", (c) => c.notNull())
        .addColumn("payload", mysql ? sql`mediumtext` : sql`text`, (c) => c.notNull())
        .addColumn("at", bigint, (c) => c.notNull());
      await (mysql ? items.modifyEnd(engine) : items).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable("orch_live_items").ifExists().execute();
      await db.schema.dropTable("orch_live_watches").ifExists().execute();
    },
  };
}
