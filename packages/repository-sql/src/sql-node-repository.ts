/**
 * Nodes, their capacity, reservations and port allocations. Reservation is
 * enforced by the database: a conditional UPDATE adds to the node's allocated
 * resources only while they stay within capacity × overcommit (the node's row
 * lock serialises concurrent placements on one node), and the primary key on
 * (node, port) makes a double allocation impossible.
 */
import {
  ConflictError,
  type NewNode,
  NODE_STATUSES,
  type Node,
  type NodeChanges,
  type NodeRepository,
  type NodeReservation,
  type NodeStatus,
  NotFoundError,
  type PortAllocation,
  type Resources,
  type UnavailableRuntime,
} from "@orchestrator/core";
import { sql } from "kysely";
import {
  bool,
  checkDate,
  checkOneOf,
  checkPort,
  checkPorts,
  checkResources,
  checkString,
  checkStringRecord,
  cpuFromMillis,
  fromJson,
  invalid,
  MAX_HASH,
  MAX_ID,
  MAX_NAME,
  num,
  toDate,
  toDateOrNull,
  toJson,
} from "./codec.js";
import { PreparedQuery, pick } from "./prepared-query.js";
import type { NodeReservationsTable, NodesTable } from "./schema.js";
import type { SqlScope } from "./sql-executor.js";
import { affected, forUpdate, isDuplicate } from "./sql-helpers.js";

type NodeRow = NodesTable;

// The placement hot path, compiled once (see PreparedQuery).
const RESERVE = new PreparedQuery<
  { id: string; memoryMb: number; cpuM: number; diskMb: number },
  never
>((db, args) =>
  db
    .updateTable("orch_nodes")
    .set((eb) => ({
      allocated_memory_mb: eb("allocated_memory_mb", "+", args.memoryMb),
      allocated_cpu_m: eb("allocated_cpu_m", "+", args.cpuM),
      allocated_disk_mb: eb("allocated_disk_mb", "+", args.diskMb),
    }))
    .where("id", "=", args.id)
    .where("status", "=", "ONLINE")
    .where((eb) =>
      eb.and([
        eb(eb("allocated_memory_mb", "+", args.memoryMb), "<=", eb.ref("limit_memory_mb")),
        eb(eb("allocated_cpu_m", "+", args.cpuM), "<=", eb.ref("limit_cpu_m")),
        eb(eb("allocated_disk_mb", "+", args.diskMb), "<=", eb.ref("limit_disk_mb")),
      ]),
    ),
);
const INSERT_RESERVATION = new PreparedQuery<NodeReservationsTable, never>((db, args) =>
  db
    .insertInto("orch_node_reservations")
    .values(
      pick(args, [
        "instance_id",
        "node_id",
        "memory_mb",
        "cpu_m",
        "disk_mb",
        "ports",
        "created_at",
      ]),
    ),
);
// The shape is the number of ports: `port0`, `port1`, ... of one instance on one node.
const INSERT_PORTS = new PreparedQuery<Record<string, string | number>, never>((db, args, shape) =>
  db.insertInto("orch_port_allocations").values(
    Array.from({ length: Number(shape) }, (_, index) => ({
      node_id: args.node_id as string,
      port: args[`port${index}`] as number,
      instance_id: args.instance_id as string,
    })),
  ),
);
const DELETE_RESERVATION = new PreparedQuery<{ instance_id: string }, never>((db, args) =>
  db.deleteFrom("orch_node_reservations").where("instance_id", "=", args.instance_id),
);
const TOUCH = new PreparedQuery<{ id: string; at: number }, never>((db, args) =>
  db.updateTable("orch_nodes").set({ last_seen_at: args.at }).where("id", "=", args.id),
);

/** Reservations of the current transaction not yet added to their node's row. */
const NODE_ALLOCATIONS = "orch_nodes.allocated";

interface PendingAllocation {
  nodeId: string;
  memoryMb: number;
  cpuM: number;
  diskMb: number;
}

/** The node's row as this transaction last read it (read once, until the allocations are written). */
async function nodeRow(scope: SqlScope, nodeId: string): Promise<NodeRow | null> {
  const key = `node-row:${nodeId}`;
  if (scope.memo.has(key)) return scope.memo.get(key) as NodeRow | null;
  const row =
    (await scope.read((db) =>
      db.selectFrom("orch_nodes").selectAll().where("id", "=", nodeId).executeTakeFirst(),
    )) ?? null;
  scope.memo.set(key, row);
  return row;
}

/** What this transaction reserved on a node and has not written yet. */
function pendingOn(scope: SqlScope, nodeId: string): Omit<PendingAllocation, "nodeId"> {
  const sum = { memoryMb: 0, cpuM: 0, diskMb: 0 };
  for (const pending of scope.deferred<PendingAllocation>(NODE_ALLOCATIONS)) {
    if (pending.nodeId !== nodeId) continue;
    sum.memoryMb += pending.memoryMb;
    sum.cpuM += pending.cpuM;
    sum.diskMb += pending.diskMb;
  }
  return sum;
}

/** Why a node cannot take a reservation: its status, or what is left of its capacity. */
function refusal(
  row: NodeRow,
  resources: Resources,
  pending: Omit<PendingAllocation, "nodeId"> = { memoryMb: 0, cpuM: 0, diskMb: 0 },
): ConflictError {
  if (row.status !== "ONLINE") {
    return new ConflictError(`node '${row.id}' is ${row.status}: nothing can be placed on it`, {
      details: { reason: "status", nodeId: row.id, status: row.status },
    });
  }
  const free = {
    memoryMb: num(row.limit_memory_mb) - num(row.allocated_memory_mb) - pending.memoryMb,
    cpu: (num(row.limit_cpu_m) - num(row.allocated_cpu_m) - pending.cpuM) / 1000,
    diskMb: num(row.limit_disk_mb) - num(row.allocated_disk_mb) - pending.diskMb,
  };
  return new ConflictError(`node '${row.id}' lacks capacity`, {
    details: { reason: "capacity", nodeId: row.id, requested: resources, free },
  });
}

/**
 * Adds a transaction's reservations to their nodes' rows: one conditional
 * UPDATE per node (in id order, so two transactions lock nodes in the same
 * order). A node that no longer has room (taken by a concurrent transaction
 * since it was read) fails the transaction with CONFLICT.
 */
async function writeAllocations(scope: SqlScope, rows: PendingAllocation[]): Promise<void> {
  const byNode = new Map<string, PendingAllocation>();
  for (const row of rows) {
    const sum = byNode.get(row.nodeId) ?? { nodeId: row.nodeId, memoryMb: 0, cpuM: 0, diskMb: 0 };
    sum.memoryMb += row.memoryMb;
    sum.cpuM += row.cpuM;
    sum.diskMb += row.diskMb;
    byNode.set(row.nodeId, sum);
  }
  for (const nodeId of [...byNode.keys()].sort()) {
    const sum = byNode.get(nodeId)!;
    scope.memo.delete(`node-row:${nodeId}`);
    const result = await scope.write((db) =>
      RESERVE.execute(db, {
        id: nodeId,
        memoryMb: sum.memoryMb,
        cpuM: sum.cpuM,
        diskMb: sum.diskMb,
      }),
    );
    if (affected(result) > 0) continue;
    const row = await nodeRow(scope, nodeId);
    if (!row) throw new NotFoundError("node", nodeId);
    throw refusal(row, {
      memoryMb: sum.memoryMb,
      cpu: sum.cpuM / 1000,
      diskMb: sum.diskMb,
    });
  }
}

/** Ids per statement of `touchMany`. */
const TOUCH_CHUNK = 500;

// Every column but the credential hash: listings never carry it.
const NODE_COLUMNS = [
  "id",
  "name",
  "status",
  "drain_requested",
  "labels",
  "capacity_memory_mb",
  "capacity_cpu_m",
  "capacity_disk_mb",
  "overcommit",
  "limit_memory_mb",
  "limit_cpu_m",
  "limit_disk_mb",
  "allocated_memory_mb",
  "allocated_cpu_m",
  "allocated_disk_mb",
  "port_from",
  "port_to",
  "reserved_ports",
  "runtimes",
  "unavailable_runtimes",
  "agent_version",
  "last_seen_at",
  "created_at",
] as const;

type PublicNodeRow = Omit<NodeRow, "credential_hash">;

function toNode(row: PublicNodeRow): Node {
  return {
    id: row.id,
    name: row.name,
    status: row.status as NodeStatus,
    drainRequested: bool(row.drain_requested),
    labels: fromJson(row.labels, {}),
    capacity: {
      memoryMb: num(row.capacity_memory_mb),
      cpu: cpuFromMillis(row.capacity_cpu_m),
      diskMb: num(row.capacity_disk_mb),
    },
    allocated: {
      memoryMb: num(row.allocated_memory_mb),
      cpu: cpuFromMillis(row.allocated_cpu_m),
      diskMb: num(row.allocated_disk_mb),
    },
    overcommit: num(row.overcommit),
    portRange: { from: num(row.port_from), to: num(row.port_to) },
    reservedPorts: fromJson<number[]>(row.reserved_ports, []),
    runtimes: fromJson<string[]>(row.runtimes, []),
    unavailableRuntimes: fromJson<{ kind: string; reason: string | null; since: number }[]>(
      row.unavailable_runtimes,
      [],
    ).map((entry) => ({ kind: entry.kind, reason: entry.reason, since: toDate(entry.since) })),
    agentVersion: row.agent_version,
    lastSeenAt: toDateOrNull(row.last_seen_at),
    createdAt: toDate(row.created_at),
  };
}

interface CheckedCapacity {
  capacity: { memoryMb: number; cpuM: number; diskMb: number };
  overcommit: number;
}

function limits({ capacity, overcommit }: CheckedCapacity) {
  return {
    limit_memory_mb: Math.floor(capacity.memoryMb * overcommit),
    limit_cpu_m: Math.floor(capacity.cpuM * overcommit),
    // Disk is never overcommitted: it runs out for real.
    limit_disk_mb: capacity.diskMb,
  };
}

function checkOvercommit(value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > 100) {
    throw invalid("overcommit", "must be a number above 0 and at most 100");
  }
  return value;
}

function checkPortRange(value: unknown): { from: number; to: number } {
  const range = value as { from?: unknown; to?: unknown } | null;
  if (typeof range !== "object" || range === null) throw invalid("portRange", "must be an object");
  const from = checkPort("portRange.from", range.from);
  const to = checkPort("portRange.to", range.to);
  if (from > to) throw invalid("portRange", "from must not be above to");
  return { from, to };
}

function checkRuntimes(value: unknown): string[] {
  if (!Array.isArray(value)) throw invalid("runtimes", "must be an array");
  return value.map((runtime, index) => checkString(`runtimes[${index}]`, runtime, 64));
}

function checkUnavailableRuntimes(
  value: unknown,
): { kind: string; reason: string | null; since: number }[] {
  if (!Array.isArray(value)) throw invalid("unavailableRuntimes", "must be an array");
  if (value.length > 16) throw invalid("unavailableRuntimes", "must have at most 16 entries");
  return value.map((entry: UnavailableRuntime, index) => {
    const path = `unavailableRuntimes[${index}]`;
    if (typeof entry !== "object" || entry === null) throw invalid(path, "must be an object");
    return {
      kind: checkString(`${path}.kind`, entry.kind, 64),
      reason: entry.reason === null ? null : checkString(`${path}.reason`, entry.reason, 200, 0),
      since: checkDate(`${path}.since`, entry.since),
    };
  });
}

function toReservation(row: NodeReservationsTable): NodeReservation {
  return {
    nodeId: row.node_id,
    instanceId: row.instance_id,
    resources: {
      memoryMb: num(row.memory_mb),
      cpu: cpuFromMillis(row.cpu_m),
      diskMb: num(row.disk_mb),
    },
    ports: fromJson<number[]>(row.ports, []),
    createdAt: toDate(row.created_at),
  };
}

export class SqlNodeRepository implements NodeRepository {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  /**
   * Before anything but `reserve` in a transaction: this transaction's
   * reservations are written to their nodes' rows (so reads see them), and
   * node rows read for `reserve` are read again next time (this may change them).
   */
  async #settle(): Promise<void> {
    if (!this.#scope.inTransaction) return;
    await this.#scope.flushDeferred(NODE_ALLOCATIONS);
    for (const key of [...this.#scope.memo.keys()])
      if (key.startsWith("node-row:")) this.#scope.memo.delete(key);
  }

  async list(filter: { status?: NodeStatus | readonly NodeStatus[] } = {}): Promise<Node[]> {
    await this.#settle();
    const statuses =
      filter.status === undefined
        ? undefined
        : (Array.isArray(filter.status) ? filter.status : [filter.status]).map((status) =>
            checkOneOf("status", status, NODE_STATUSES),
          );
    if (statuses && statuses.length === 0) return [];
    const rows = await this.#scope.read((db) => {
      let query = db.selectFrom("orch_nodes").select(NODE_COLUMNS).orderBy("id");
      if (statuses) query = query.where("status", "in", statuses);
      return query.execute();
    });
    return rows.map(toNode);
  }

  async get(id: string): Promise<Node | null> {
    await this.#settle();
    const row = await this.#scope.read((db) =>
      db.selectFrom("orch_nodes").select(NODE_COLUMNS).where("id", "=", id).executeTakeFirst(),
    );
    return row ? toNode(row) : null;
  }

  async countByStatus(): Promise<Partial<Record<NodeStatus, number>>> {
    await this.#settle();
    const rows = await this.#scope.read((db) =>
      db
        .selectFrom("orch_nodes")
        .select(["status", (eb) => eb.fn.countAll().as("count")])
        .groupBy("status")
        .execute(),
    );
    return Object.fromEntries(rows.map((row) => [row.status, num(row.count)]));
  }

  async create(node: NewNode, credentialHash: string, at: Date): Promise<Node> {
    await this.#settle();
    const id = checkString("id", node.id, MAX_ID);
    const checked: CheckedCapacity = {
      capacity: checkResources("capacity", node.capacity),
      overcommit: checkOvercommit(node.overcommit),
    };
    const portRange = checkPortRange(node.portRange);
    const reservedPorts = checkPorts("reservedPorts", node.reservedPorts);
    const row: NodeRow = {
      id,
      name: checkString("name", node.name, MAX_NAME),
      status: "ONLINE",
      drain_requested: 0,
      labels: toJson(checkStringRecord("labels", node.labels)),
      capacity_memory_mb: checked.capacity.memoryMb,
      capacity_cpu_m: checked.capacity.cpuM,
      capacity_disk_mb: checked.capacity.diskMb,
      overcommit: checked.overcommit,
      ...limits(checked),
      allocated_memory_mb: 0,
      allocated_cpu_m: 0,
      allocated_disk_mb: 0,
      port_from: portRange.from,
      port_to: portRange.to,
      reserved_ports: toJson(reservedPorts),
      runtimes: toJson(checkRuntimes(node.runtimes)),
      unavailable_runtimes: "[]",
      agent_version: checkString("agentVersion", node.agentVersion, MAX_NAME, 0),
      credential_hash: checkString("credentialHash", credentialHash, MAX_HASH),
      last_seen_at: null,
      created_at: checkDate("at", at),
    };
    await this.#scope.atomic(async (scope) => {
      await scope.write((db) => db.insertInto("orch_nodes").values(row).execute());
      if (reservedPorts.length > 0) {
        await scope.write((db) =>
          db
            .insertInto("orch_port_allocations")
            .values(reservedPorts.map((port) => ({ node_id: id, port, instance_id: null })))
            .execute(),
        );
      }
    });
    const { credential_hash: _, ...rest } = row;
    return toNode(rest);
  }

  async findByCredentialHash(credentialHash: string): Promise<Node | null> {
    await this.#settle();
    const hash = checkString("credentialHash", credentialHash, MAX_HASH);
    const row = await this.#scope.read((db) =>
      db
        .selectFrom("orch_nodes")
        .select(NODE_COLUMNS)
        .where("credential_hash", "=", hash)
        .executeTakeFirst(),
    );
    return row ? toNode(row) : null;
  }

  async setCredentialHash(id: string, credentialHash: string): Promise<void> {
    await this.#settle();
    const hash = checkString("credentialHash", credentialHash, MAX_HASH);
    const result = await this.#scope.write((db) =>
      db
        .updateTable("orch_nodes")
        .set({ credential_hash: hash })
        .where("id", "=", id)
        .executeTakeFirst(),
    );
    if (affected(result) === 0) throw new NotFoundError("node", id);
  }

  async setStatus(
    id: string,
    status: NodeStatus,
    options: { drainRequested?: boolean; lastSeenAt?: Date } = {},
  ): Promise<Node> {
    await this.#settle();
    const changes: Partial<NodeRow> = { status: checkOneOf("status", status, NODE_STATUSES) };
    if (options.drainRequested !== undefined) {
      changes.drain_requested = options.drainRequested ? 1 : 0;
    }
    if (options.lastSeenAt !== undefined) {
      changes.last_seen_at = checkDate("lastSeenAt", options.lastSeenAt);
    }
    const result = await this.#scope.write((db) =>
      db.updateTable("orch_nodes").set(changes).where("id", "=", id).executeTakeFirst(),
    );
    if (affected(result) === 0) throw new NotFoundError("node", id);
    return this.#mustGet(id);
  }

  async updateInventory(id: string, changes: NodeChanges): Promise<Node> {
    await this.#settle();
    return this.#scope.atomic(async (scope) => {
      const row = await scope.read((db) =>
        forUpdate(
          scope,
          db.selectFrom("orch_nodes").selectAll().where("id", "=", id),
        ).executeTakeFirst(),
      );
      if (!row) throw new NotFoundError("node", id);
      const update: Partial<NodeRow> = {};
      if (changes.name !== undefined) update.name = checkString("name", changes.name, MAX_NAME);
      if (changes.labels !== undefined) {
        update.labels = toJson(checkStringRecord("labels", changes.labels));
      }
      if (changes.runtimes !== undefined) update.runtimes = toJson(checkRuntimes(changes.runtimes));
      if (changes.unavailableRuntimes !== undefined) {
        update.unavailable_runtimes = toJson(checkUnavailableRuntimes(changes.unavailableRuntimes));
      }
      if (changes.agentVersion !== undefined) {
        update.agent_version = checkString("agentVersion", changes.agentVersion, MAX_NAME, 0);
      }
      if (changes.portRange !== undefined) {
        const range = checkPortRange(changes.portRange);
        update.port_from = range.from;
        update.port_to = range.to;
      }
      if (changes.capacity !== undefined || changes.overcommit !== undefined) {
        const checked: CheckedCapacity = {
          capacity:
            changes.capacity !== undefined
              ? checkResources("capacity", changes.capacity)
              : {
                  memoryMb: num(row.capacity_memory_mb),
                  cpuM: num(row.capacity_cpu_m),
                  diskMb: num(row.capacity_disk_mb),
                },
          overcommit:
            changes.overcommit !== undefined
              ? checkOvercommit(changes.overcommit)
              : num(row.overcommit),
        };
        update.capacity_memory_mb = checked.capacity.memoryMb;
        update.capacity_cpu_m = checked.capacity.cpuM;
        update.capacity_disk_mb = checked.capacity.diskMb;
        update.overcommit = checked.overcommit;
        Object.assign(update, limits(checked));
      }
      let reservedPorts: number[] | undefined;
      if (changes.reservedPorts !== undefined) {
        reservedPorts = checkPorts("reservedPorts", changes.reservedPorts);
        update.reserved_ports = toJson(reservedPorts);
      }
      if (Object.keys(update).length > 0) {
        await scope.write((db) =>
          db.updateTable("orch_nodes").set(update).where("id", "=", id).execute(),
        );
      }
      if (reservedPorts) {
        await scope.write((db) =>
          db
            .deleteFrom("orch_port_allocations")
            .where("node_id", "=", id)
            .where("instance_id", "is", null)
            .execute(),
        );
        if (reservedPorts.length > 0) {
          // Ports an instance holds stay with it; the others are taken for the host.
          const values = reservedPorts.map((port) => ({ node_id: id, port, instance_id: null }));
          await scope.write((db) => {
            const insert = db.insertInto("orch_port_allocations").values(values);
            return (
              scope.flavor.name === "mysql"
                ? insert.onDuplicateKeyUpdate({ port: sql.ref("port") })
                : insert.onConflict((conflict) => conflict.doNothing())
            ).execute();
          });
        }
      }
      const { credential_hash: _, ...rest } = { ...row, ...update };
      return toNode(rest);
    });
  }

  async touch(id: string, at: Date): Promise<void> {
    await this.#settle();
    const lastSeen = checkDate("at", at);
    const result = await this.#scope.write((db) => TOUCH.execute(db, { id, at: lastSeen }));
    if (affected(result) === 0) throw new NotFoundError("node", id);
  }

  async touchMany(ids: readonly string[], at: Date): Promise<number> {
    await this.#settle();
    const lastSeen = checkDate("at", at);
    let updated = 0;
    // Bounded IN lists; each chunk is one idempotent statement (no transaction needed).
    for (const id of ids) checkString("id", id, MAX_ID);
    for (let start = 0; start < ids.length; start += TOUCH_CHUNK) {
      const chunk = ids.slice(start, start + TOUCH_CHUNK);
      const result = await this.#scope.write((db) =>
        db
          .updateTable("orch_nodes")
          .set({ last_seen_at: lastSeen })
          .where("id", "in", chunk)
          .executeTakeFirst(),
      );
      updated += Number(result.numUpdatedRows);
    }
    return updated;
  }

  async reserve(
    nodeId: string,
    instanceId: string,
    resources: Resources,
    ports: readonly number[],
    at: Date,
  ): Promise<NodeReservation> {
    checkString("nodeId", nodeId, MAX_ID);
    checkString("instanceId", instanceId, MAX_ID);
    const need = checkResources("resources", resources);
    const wanted = checkPorts("ports", ports);
    const createdAt = checkDate("at", at);
    const reserved: PendingAllocation = {
      nodeId,
      memoryMb: need.memoryMb,
      cpuM: need.cpuM,
      diskMb: need.diskMb,
    };
    // The node's allocation is checked here, against its row plus what this
    // transaction already reserved on it, and written once per node just
    // before the commit by a conditional UPDATE (see writeAllocations): one
    // round trip per node and transaction instead of one per placement, and
    // the node's row lock is only taken at the end, so transactions placing
    // on one node overlap. The conditional UPDATE stays the authority: a
    // concurrent transaction that took the capacity meanwhile makes the
    // commit fail with CONFLICT, never an over-allocation.
    return this.#scope.atomic(async (scope) => {
      const row = await nodeRow(scope, nodeId);
      if (!row) throw new NotFoundError("node", nodeId);
      const pending = pendingOn(scope, nodeId);
      if (
        row.status !== "ONLINE" ||
        num(row.allocated_memory_mb) + pending.memoryMb + need.memoryMb >
          num(row.limit_memory_mb) ||
        num(row.allocated_cpu_m) + pending.cpuM + need.cpuM > num(row.limit_cpu_m) ||
        num(row.allocated_disk_mb) + pending.diskMb + need.diskMb > num(row.limit_disk_mb)
      ) {
        throw refusal(row, resources, pending);
      }
      try {
        await scope.write((db) =>
          INSERT_RESERVATION.execute(db, {
            instance_id: instanceId,
            node_id: nodeId,
            memory_mb: need.memoryMb,
            cpu_m: need.cpuM,
            disk_mb: need.diskMb,
            ports: toJson(wanted),
            created_at: createdAt,
          }),
        );
      } catch (error) {
        if (!isDuplicate(error)) throw error;
        throw new ConflictError(`instance '${instanceId}' already holds a reservation`, {
          cause: error,
          details: { reason: "reserved", instanceId },
        });
      }
      if (wanted.length > 0) {
        try {
          // One statement: taken or refused as a whole.
          const values: Record<string, string | number> = {
            node_id: nodeId,
            instance_id: instanceId,
          };
          for (const [index, port] of wanted.entries()) values[`port${index}`] = port;
          await scope.write((db) => INSERT_PORTS.execute(db, values, String(wanted.length)));
        } catch (error) {
          if (!isDuplicate(error)) throw error;
          // The refused reservation leaves nothing behind in the caller's transaction.
          await scope.write((db) => DELETE_RESERVATION.execute(db, { instance_id: instanceId }));
          const taken = await scope.read((db) =>
            db
              .selectFrom("orch_port_allocations")
              .select("port")
              .where("node_id", "=", nodeId)
              .where("port", "in", wanted)
              .orderBy("port")
              .execute(),
          );
          const ports = taken.map((row) => num(row.port));
          throw new ConflictError(`port(s) ${ports.join(", ")} already taken on node '${nodeId}'`, {
            cause: error,
            details: { reason: "ports", nodeId, ports },
          });
        }
      }
      scope.defer(NODE_ALLOCATIONS, reserved, writeAllocations);
      return {
        nodeId,
        instanceId,
        resources: { memoryMb: need.memoryMb, cpu: need.cpuM / 1000, diskMb: need.diskMb },
        ports: wanted,
        createdAt: new Date(createdAt),
      };
    });
  }

  async release(instanceId: string): Promise<NodeReservation | null> {
    await this.#settle();
    return this.#scope.atomic(async (scope) => {
      const row = await scope.read((db) =>
        forUpdate(
          scope,
          db.selectFrom("orch_node_reservations").selectAll().where("instance_id", "=", instanceId),
        ).executeTakeFirst(),
      );
      if (!row) return null;
      const reservation = toReservation(row);
      if (reservation.ports.length > 0) {
        await scope.write((db) =>
          db
            .deleteFrom("orch_port_allocations")
            .where("node_id", "=", row.node_id)
            .where("port", "in", reservation.ports)
            .where("instance_id", "=", instanceId)
            .execute(),
        );
      }
      await scope.write((db) =>
        db
          .updateTable("orch_nodes")
          .set((eb) => ({
            allocated_memory_mb: eb("allocated_memory_mb", "-", num(row.memory_mb)),
            allocated_cpu_m: eb("allocated_cpu_m", "-", num(row.cpu_m)),
            allocated_disk_mb: eb("allocated_disk_mb", "-", num(row.disk_mb)),
          }))
          .where("id", "=", row.node_id)
          .execute(),
      );
      await scope.write((db) =>
        db.deleteFrom("orch_node_reservations").where("instance_id", "=", instanceId).execute(),
      );
      return reservation;
    });
  }

  async getReservation(instanceId: string): Promise<NodeReservation | null> {
    await this.#settle();
    const row = await this.#scope.read((db) =>
      db
        .selectFrom("orch_node_reservations")
        .selectAll()
        .where("instance_id", "=", instanceId)
        .executeTakeFirst(),
    );
    return row ? toReservation(row) : null;
  }

  async listPortAllocations(filter: { nodeId?: string } = {}): Promise<PortAllocation[]> {
    await this.#settle();
    const rows = await this.#scope.read((db) => {
      let query = db
        .selectFrom("orch_port_allocations")
        .select(["node_id", "port", "instance_id"])
        .orderBy("node_id")
        .orderBy("port");
      if (filter.nodeId !== undefined) query = query.where("node_id", "=", filter.nodeId);
      return query.execute();
    });
    return rows.map((row) => ({
      nodeId: row.node_id,
      port: num(row.port),
      instanceId: row.instance_id,
    }));
  }

  async delete(id: string): Promise<void> {
    await this.#settle();
    await this.#scope.atomic(async (scope) => {
      const row = await scope.read((db) =>
        forUpdate(
          scope,
          db.selectFrom("orch_nodes").select("id").where("id", "=", id),
        ).executeTakeFirst(),
      );
      if (!row) throw new NotFoundError("node", id);
      const held = await scope.read((db) =>
        db
          .selectFrom("orch_node_reservations")
          .select((eb) => eb.fn.countAll().as("count"))
          .where("node_id", "=", id)
          .executeTakeFirstOrThrow(),
      );
      if (num(held.count) > 0) {
        throw new ConflictError(`node '${id}' still holds ${num(held.count)} instance(s)`, {
          details: { reason: "not-empty", nodeId: id, instances: num(held.count) },
        });
      }
      await scope.write((db) =>
        db.deleteFrom("orch_port_allocations").where("node_id", "=", id).execute(),
      );
      await scope.write((db) => db.deleteFrom("orch_nodes").where("id", "=", id).execute());
    });
  }

  async #mustGet(id: string): Promise<Node> {
    const node = await this.get(id);
    if (!node) throw new NotFoundError("node", id);
    return node;
  }
}
