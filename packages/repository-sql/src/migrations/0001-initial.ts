/**
 * Version 1 of the schema. A released migration is never edited: schema
 * changes go in a new file (`0002-...`), registered in `index.ts`.
 */
import { type CreateTableBuilder, type Kysely, sql } from "kysely";
import type { SqlFlavorName } from "../sql-flavor.js";

type AnyTable = CreateTableBuilder<string, string>;

export function initialMigration(flavor: SqlFlavorName) {
  const mysql = flavor === "mysql";
  // SQLite: INTEGER PRIMARY KEY is the rowid (fast); MySQL: 64-bit integers.
  const bigint = mysql ? "bigint" : "integer";
  // JSON documents that can exceed MySQL's 64 KiB TEXT (template definitions, command payloads).
  const document = mysql ? sql`mediumtext` : sql`text`;
  const id = "varchar(128)";
  const name = "varchar(255)";
  const hash = "varchar(255)";
  const table = (db: Kysely<unknown>, tableName: string, clustered = false): AnyTable => {
    const builder = db.schema.createTable(tableName);
    // MySQL: binary collation (exact comparisons, as in SQLite); InnoDB clusters rows by primary key.
    if (mysql) {
      return builder.modifyEnd(
        sql`engine = InnoDB default charset = utf8mb4 collate = utf8mb4_bin`,
      );
    }
    // SQLite: small rows keyed by text are stored in their primary key's B-tree
    // (WITHOUT ROWID), which saves one index write per insert.
    return clustered ? builder.modifyEnd(sql`without rowid`) : builder;
  };

  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await table(db, "orch_sequences", true)
        .addColumn("name", "varchar(64)", (c) => c.primaryKey())
        .addColumn("value", bigint, (c) => c.notNull())
        .execute();
      await sql`insert into orch_sequences (name, value) values ('events', 0)`.execute(db);

      await table(db, "orch_templates")
        .addColumn("name", name, (c) => c.primaryKey())
        .addColumn("description", "text", (c) => c.notNull())
        .addColumn("latest_version", "integer", (c) => c.notNull())
        .addColumn("created_at", bigint, (c) => c.notNull())
        .addColumn("updated_at", bigint, (c) => c.notNull())
        .execute();

      await table(db, "orch_template_versions")
        .addColumn("template_name", name, (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("definition", document, (c) => c.notNull())
        .addColumn("digest", hash, (c) => c.notNull())
        .addColumn("created_at", bigint, (c) => c.notNull())
        .addPrimaryKeyConstraint("orch_template_versions_pk", ["template_name", "version"])
        .addForeignKeyConstraint(
          "orch_template_versions_template_fk",
          ["template_name"],
          "orch_templates",
          ["name"],
          (fk) => fk.onDelete("cascade"),
        )
        .execute();

      await table(db, "orch_nodes")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("name", name, (c) => c.notNull())
        .addColumn("status", "varchar(16)", (c) => c.notNull())
        .addColumn("drain_requested", "integer", (c) => c.notNull())
        .addColumn("labels", "text", (c) => c.notNull())
        .addColumn("capacity_memory_mb", bigint, (c) => c.notNull())
        .addColumn("capacity_cpu_m", bigint, (c) => c.notNull())
        .addColumn("capacity_disk_mb", bigint, (c) => c.notNull())
        .addColumn("overcommit", "double precision", (c) => c.notNull())
        .addColumn("limit_memory_mb", bigint, (c) => c.notNull())
        .addColumn("limit_cpu_m", bigint, (c) => c.notNull())
        .addColumn("limit_disk_mb", bigint, (c) => c.notNull())
        .addColumn("allocated_memory_mb", bigint, (c) => c.notNull())
        .addColumn("allocated_cpu_m", bigint, (c) => c.notNull())
        .addColumn("allocated_disk_mb", bigint, (c) => c.notNull())
        .addColumn("port_from", "integer", (c) => c.notNull())
        .addColumn("port_to", "integer", (c) => c.notNull())
        .addColumn("reserved_ports", "text", (c) => c.notNull())
        .addColumn("runtimes", "text", (c) => c.notNull())
        .addColumn("agent_version", name, (c) => c.notNull())
        .addColumn("credential_hash", hash, (c) => c.notNull().unique())
        .addColumn("last_seen_at", bigint)
        .addColumn("created_at", bigint, (c) => c.notNull())
        .execute();
      await db.schema.createIndex("orch_nodes_status").on("orch_nodes").column("status").execute();

      await table(db, "orch_node_reservations", true)
        .addColumn("instance_id", id, (c) => c.primaryKey())
        .addColumn("node_id", id, (c) => c.notNull())
        .addColumn("memory_mb", bigint, (c) => c.notNull())
        .addColumn("cpu_m", bigint, (c) => c.notNull())
        .addColumn("disk_mb", bigint, (c) => c.notNull())
        // The reserved ports (JSON array), so a release needs no index on allocations by instance.
        .addColumn("ports", "text", (c) => c.notNull())
        .addColumn("created_at", bigint, (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("orch_node_reservations_node")
        .on("orch_node_reservations")
        .column("node_id")
        .execute();

      // The unique key on (node_id, port) is what makes a double allocation impossible.
      await table(db, "orch_port_allocations", true)
        .addColumn("node_id", id, (c) => c.notNull())
        .addColumn("port", "integer", (c) => c.notNull())
        .addColumn("instance_id", id)
        .addPrimaryKeyConstraint("orch_port_allocations_pk", ["node_id", "port"])
        .execute();

      await table(db, "orch_instances")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("name", name, (c) => c.notNull())
        .addColumn("template_name", name, (c) => c.notNull())
        .addColumn("template_version", "integer", (c) => c.notNull())
        .addColumn("desired_state", "varchar(16)", (c) => c.notNull())
        .addColumn("state", "varchar(16)", (c) => c.notNull())
        .addColumn("failure", "text")
        .addColumn("node_id", id)
        .addColumn("epoch", "integer", (c) => c.notNull())
        .addColumn("ports", "text", (c) => c.notNull())
        .addColumn("memory_mb", bigint, (c) => c.notNull())
        .addColumn("cpu_m", bigint, (c) => c.notNull())
        .addColumn("disk_mb", bigint, (c) => c.notNull())
        .addColumn("variables", document, (c) => c.notNull())
        .addColumn("secret_names", "text", (c) => c.notNull())
        .addColumn("secret_values", document)
        .addColumn("report_seq", bigint, (c) => c.notNull())
        .addColumn("owner", id)
        .addColumn("version", bigint, (c) => c.notNull())
        .addColumn("created_at", bigint, (c) => c.notNull())
        .addColumn("updated_at", bigint, (c) => c.notNull())
        .execute();
      // Listing pages are ordered by (created_at, id); each filter has an index in that order.
      for (const [suffix, columns] of [
        ["created", ["created_at", "id"]],
        ["state", ["state", "created_at", "id"]],
        ["node", ["node_id", "created_at", "id"]],
        ["template", ["template_name", "created_at", "id"]],
      ] as const) {
        await db.schema
          .createIndex(`orch_instances_${suffix}`)
          .on("orch_instances")
          .columns([...columns])
          .execute();
      }

      // seq in commit order: MySQL assigns it from orch_sequences under its row lock;
      // SQLite lets the rowid do it (writers are serialised), AUTOINCREMENT so that a
      // seq is never handed out twice, even after the newest events were deleted.
      await table(db, "orch_events")
        .addColumn("seq", bigint, (c) => (mysql ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn("kind", "varchar(16)", (c) => c.notNull())
        .addColumn("subject_id", id, (c) => c.notNull())
        .addColumn("from_state", "varchar(16)", (c) => c.notNull())
        .addColumn("to_state", "varchar(16)", (c) => c.notNull())
        .addColumn("at", bigint, (c) => c.notNull())
        .addColumn("reason", "text", (c) => c.notNull())
        .addColumn("actor_kind", "varchar(16)", (c) => c.notNull())
        .addColumn("actor_id", id, (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("orch_events_subject")
        .on("orch_events")
        .columns(["subject_id", "seq"])
        .execute();

      await table(db, "orch_commands")
        .addColumn("ordinal", bigint, (c) => c.primaryKey().autoIncrement())
        .addColumn("id", id, (c) => c.notNull().unique())
        .addColumn("node_id", id, (c) => c.notNull())
        .addColumn("instance_id", id, (c) => c.notNull())
        .addColumn("type", "varchar(32)", (c) => c.notNull())
        .addColumn("payload", document, (c) => c.notNull())
        .addColumn("epoch", "integer", (c) => c.notNull())
        .addColumn("status", "varchar(16)", (c) => c.notNull())
        .addColumn("attempts", "integer", (c) => c.notNull())
        .addColumn("next_attempt_at", bigint, (c) => c.notNull())
        .addColumn("created_at", bigint, (c) => c.notNull())
        .addColumn("delivered_at", bigint)
        .addColumn("completed_at", bigint)
        .addColumn("result_ok", "integer")
        .addColumn("result_message", "text")
        .execute();
      // Open commands (no result yet) by node in delivery order: a claim scans (and
      // locks) only what it takes, and expiry scans only open commands.
      await db.schema
        .createIndex("orch_commands_open")
        .on("orch_commands")
        .columns(["completed_at", "node_id", "ordinal"])
        .execute();
      await db.schema
        .createIndex("orch_commands_instance")
        .on("orch_commands")
        .columns(["instance_id", "ordinal"])
        .execute();

      await table(db, "orch_users")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("username", name, (c) => c.notNull())
        .addColumn("username_key", name, (c) => c.notNull().unique())
        .addColumn("role", "varchar(16)", (c) => c.notNull())
        .addColumn("disabled", "integer", (c) => c.notNull())
        .addColumn("password_hash", "varchar(1024)", (c) => c.notNull())
        .addColumn("created_at", bigint, (c) => c.notNull())
        .execute();

      await table(db, "orch_api_tokens")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("user_id", id, (c) => c.notNull())
        .addColumn("name", name, (c) => c.notNull())
        .addColumn("scopes", "text", (c) => c.notNull())
        .addColumn("secret_hash", hash, (c) => c.notNull().unique())
        .addColumn("created_at", bigint, (c) => c.notNull())
        .addColumn("expires_at", bigint)
        .addColumn("last_used_at", bigint)
        .addForeignKeyConstraint(
          "orch_api_tokens_user_fk",
          ["user_id"],
          "orch_users",
          ["id"],
          (fk) => fk.onDelete("cascade"),
        )
        .execute();
      await db.schema
        .createIndex("orch_api_tokens_user")
        .on("orch_api_tokens")
        .column("user_id")
        .execute();

      await table(db, "orch_sessions")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("user_id", id, (c) => c.notNull())
        .addColumn("secret_hash", hash, (c) => c.notNull().unique())
        .addColumn("created_at", bigint, (c) => c.notNull())
        .addColumn("expires_at", bigint, (c) => c.notNull())
        .addColumn("last_seen_at", bigint, (c) => c.notNull())
        .addColumn("ip", "varchar(64)")
        .addColumn("user_agent", "varchar(512)")
        .addForeignKeyConstraint("orch_sessions_user_fk", ["user_id"], "orch_users", ["id"], (fk) =>
          fk.onDelete("cascade"),
        )
        .execute();
      await db.schema
        .createIndex("orch_sessions_user")
        .on("orch_sessions")
        .column("user_id")
        .execute();
      await db.schema
        .createIndex("orch_sessions_expires")
        .on("orch_sessions")
        .column("expires_at")
        .execute();

      await table(db, "orch_join_tokens")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("secret_hash", hash, (c) => c.notNull().unique())
        .addColumn("created_by", id)
        .addColumn("created_at", bigint, (c) => c.notNull())
        .addColumn("expires_at", bigint, (c) => c.notNull())
        .addColumn("used_at", bigint)
        .addColumn("node_id", id)
        .execute();

      await table(db, "orch_audit_log")
        .addColumn("seq", bigint, (c) => c.primaryKey().autoIncrement())
        .addColumn("at", bigint, (c) => c.notNull())
        .addColumn("actor_kind", "varchar(16)", (c) => c.notNull())
        .addColumn("actor_id", id, (c) => c.notNull())
        .addColumn("action", "varchar(128)", (c) => c.notNull())
        .addColumn("target", name, (c) => c.notNull())
        .addColumn("details", "text", (c) => c.notNull())
        .addColumn("source", "varchar(255)")
        .execute();
      for (const column of ["target", "actor_id", "action"] as const) {
        await db.schema
          .createIndex(`orch_audit_log_${column}`)
          .on("orch_audit_log")
          .columns([column, "seq"])
          .execute();
      }

      await table(db, "orch_leases", true)
        .addColumn("name", "varchar(128)", (c) => c.primaryKey())
        .addColumn("holder", name, (c) => c.notNull())
        .addColumn("epoch", bigint, (c) => c.notNull())
        .addColumn("expires_at", bigint, (c) => c.notNull())
        .addColumn("updated_at", bigint, (c) => c.notNull())
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      for (const tableName of [
        "orch_leases",
        "orch_audit_log",
        "orch_join_tokens",
        "orch_sessions",
        "orch_api_tokens",
        "orch_users",
        "orch_commands",
        "orch_events",
        "orch_instances",
        "orch_port_allocations",
        "orch_node_reservations",
        "orch_nodes",
        "orch_template_versions",
        "orch_templates",
        "orch_sequences",
      ]) {
        await db.schema.dropTable(tableName).ifExists().execute();
      }
    },
  };
}
