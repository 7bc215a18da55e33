/**
 * Read-only looks into the Brain's database (SQLite file or MariaDB, through
 * the same kysely schema the Brain uses), for invariants the API does not
 * show: leaked port reservations and how often a command was delivered.
 */
import { type Database, openDatabase } from "@orchestrator/repository-sql";
import type { Kysely } from "kysely";
import type { Platform } from "./platform.js";

export async function withBrainDatabase<T>(
  platform: Platform,
  read: (db: Kysely<Database>) => Promise<T>,
): Promise<T> {
  const { db } = openDatabase(platform.databaseUrl);
  try {
    return await read(db);
  } finally {
    await db.destroy();
  }
}

export interface CommandRow {
  id: string;
  type: string;
  status: string;
  attempts: number;
}

/** An instance's commands in the outbox, oldest first. */
export function commandsOf(platform: Platform, instanceId: string): Promise<CommandRow[]> {
  return withBrainDatabase(platform, async (db) =>
    (
      await db
        .selectFrom("orch_commands")
        .select(["id", "type", "status", "attempts"])
        .where("instance_id", "=", instanceId)
        .orderBy("ordinal")
        .execute()
    ).map((row) => ({ ...row, attempts: Number(row.attempts) })),
  );
}

/**
 * Every way a capacity or port reservation can leak or go missing: a
 * reservation (or an allocated port) without a placed, not destroyed instance;
 * a placed instance without its reservation or one of its ports; a node's
 * allocated totals that do not add up. Empty when everything holds.
 */
export function reservationProblems(platform: Platform): Promise<string[]> {
  return withBrainDatabase(platform, async (db) => {
    const problems: string[] = [];
    const instances = await db
      .selectFrom("orch_instances")
      .select(["id", "state", "node_id", "ports", "memory_mb"])
      .execute();
    const reservations = await db.selectFrom("orch_node_reservations").selectAll().execute();
    const allocations = await db
      .selectFrom("orch_port_allocations")
      .selectAll()
      .where("instance_id", "is not", null)
      .execute();
    const nodes = await db.selectFrom("orch_nodes").select(["id", "allocated_memory_mb"]).execute();

    const placed = new Map(
      instances.filter((i) => i.node_id !== null && i.state !== "DESTROYED").map((i) => [i.id, i]),
    );
    const reserved = new Map(reservations.map((r) => [r.instance_id, r]));
    for (const [id, instance] of placed) {
      const reservation = reserved.get(id);
      if (!reservation) {
        problems.push(`instance ${id} (${instance.state}) has no reservation`);
        continue;
      }
      if (reservation.node_id !== instance.node_id)
        problems.push(
          `instance ${id} reserved on ${reservation.node_id}, placed on ${instance.node_id}`,
        );
      const ports = Object.values(JSON.parse(instance.ports) as Record<string, number>).sort();
      const held = (JSON.parse(reservation.ports) as number[]).sort();
      if (JSON.stringify(ports) !== JSON.stringify(held))
        problems.push(`instance ${id} has ports ${ports}, its reservation ${held}`);
    }
    for (const reservation of reservations) {
      if (!placed.has(reservation.instance_id))
        problems.push(`leaked reservation of ${reservation.instance_id}`);
    }
    const expected = new Set(
      reservations.flatMap((r) =>
        (JSON.parse(r.ports) as number[]).map((port) => `${r.node_id}:${port}:${r.instance_id}`),
      ),
    );
    const actual = new Set(allocations.map((a) => `${a.node_id}:${a.port}:${a.instance_id}`));
    for (const key of actual) if (!expected.has(key)) problems.push(`leaked port ${key}`);
    for (const key of expected) if (!actual.has(key)) problems.push(`missing port ${key}`);
    for (const node of nodes) {
      const sum = reservations
        .filter((r) => r.node_id === node.id)
        .reduce((total, r) => total + Number(r.memory_mb), 0);
      if (Number(node.allocated_memory_mb) !== sum)
        problems.push(
          `node ${node.id} allocated ${node.allocated_memory_mb} MB, reservations ${sum} MB`,
        );
    }
    return problems;
  });
}
