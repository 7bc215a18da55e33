/**
 * Version 4: the runtimes each node's agent reports unavailable (a stopped or
 * hung engine), kept on the node row so the scheduling Brain knows it whatever
 * replica the agent syncs with. Written only when it changes.
 */
import type { Kysely } from "kysely";
import type { SqlFlavorName } from "../sql-flavor.js";

export function nodeUnavailableRuntimesMigration(_flavor: SqlFlavorName) {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .alterTable("orch_nodes")
        .addColumn("unavailable_runtimes", "varchar(4000)", (c) => c.notNull().defaultTo("[]"))
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable("orch_nodes").dropColumn("unavailable_runtimes").execute();
    },
  };
}
