/**
 * Instances, with optimistic concurrency: every update names the state (and
 * optionally the version) it expects, and the UPDATE's WHERE clause checks
 * it, so of two concurrent changes exactly one applies. State changes are
 * checked against core's lifecycle table.
 */
import {
  ConflictError,
  DESIRED_STATES,
  type FailureReason,
  IllegalTransitionError,
  INSTANCE_STATES,
  INSTANCE_TRIGGERS,
  type InstanceChange,
  type InstanceEvent,
  type InstanceExpectation,
  type InstanceFilter,
  InstanceLifecycle,
  type InstanceRepository,
  type InstanceState,
  type InstanceTransition,
  type NewInstance,
  NotFoundError,
  type Page,
  type PendingPlacementNote,
  type StoredInstance,
} from "@orchestrator/core";
import { type ExpressionBuilder, type SelectQueryBuilder, sql } from "kysely";
import {
  checkActor,
  checkDate,
  checkInt,
  checkNullableString,
  checkOneOf,
  checkPortRecord,
  checkResources,
  checkString,
  checkStringRecord,
  cpuFromMillis,
  decodeCursor,
  encodeCursor,
  fromJson,
  invalid,
  MAX_ID,
  MAX_NAME,
  MAX_TEXT,
  num,
  toDate,
  toJson,
} from "./codec.js";
import { PreparedQuery, pick } from "./prepared-query.js";
import type { Database, InstancesTable } from "./schema.js";
import { SqlEventRepository } from "./sql-event-repository.js";
import type { SqlScope } from "./sql-executor.js";
import { affected, forUpdate } from "./sql-helpers.js";
import { SqlNodeRepository } from "./sql-node-repository.js";
import { getPendingPlacement, setPendingPlacement } from "./sql-pending-placements.js";

const FAILURE_KINDS = [
  "prepare-failed",
  "crashed",
  "start-timeout",
  "stop-failed",
  "crash-loop",
] as const;

// Listings never read the secret values column.
const PUBLIC_COLUMNS = [
  "id",
  "name",
  "template_name",
  "template_version",
  "desired_state",
  "state",
  "failure",
  "node_id",
  "epoch",
  "ports",
  "memory_mb",
  "cpu_m",
  "disk_mb",
  "variables",
  "secret_names",
  "report_seq",
  "owner",
  "version",
  "created_at",
  "updated_at",
] as const;

type PublicRow = Omit<InstancesTable, "secret_values">;

const ALL_COLUMNS = [...PUBLIC_COLUMNS, "secret_values"] as const;

// The hot paths of placement and reporting, compiled once (see PreparedQuery).
const SELECT_PUBLIC = new PreparedQuery<{ id: string }, PublicRow>((db, args) =>
  db.selectFrom("orch_instances").select(PUBLIC_COLUMNS).where("id", "=", args.id),
);
const INSERT = new PreparedQuery<InstancesTable, never>((db, args) =>
  db.insertInto("orch_instances").values(pick(args, ALL_COLUMNS)),
);
// Shape "shared": inside a MySQL transaction, the template row is share-locked.
const TEMPLATE_LATEST = new PreparedQuery<{ name: string }, { latest_version: number }>(
  (db, args, shape) => {
    const query = db
      .selectFrom("orch_templates")
      .select("latest_version")
      .where("name", "=", args.name);
    return shape === "shared" ? query.modifyEnd(sql`lock in share mode`) : query;
  },
);

/** The template's latest version number (null: no such template), locked until the transaction ends. */
async function templateLatest(scope: SqlScope, name: string): Promise<number | null> {
  const key = templateLatestKey(name);
  if (scope.inTransaction && scope.memo.has(key)) return scope.memo.get(key) as number | null;
  const shape = scope.inTransaction && scope.flavor.lockingReads ? "shared" : "";
  const { rows } = await scope.read((db) => TEMPLATE_LATEST.execute(db, { name }, shape));
  const latest = rows[0] ? num(rows[0].latest_version) : null;
  // Share-locked (MySQL) or under SQLite's one writer: it holds until the end.
  if (scope.inTransaction) scope.memo.set(key, latest);
  return latest;
}

/** The memo key of a template's latest version (see SqlScope.memo). */
export function templateLatestKey(name: string): string {
  return `template-latest:${name}`;
}

/**
 * Committed rows by id and version, per database, as root reads returned
 * them. Every write of an instance row raises its version, so a (id, version)
 * row never changes: an update whose version check passed can build the new
 * row from it instead of reading it back (one round trip less per placement).
 * Only committed reads go in (never a transaction's own, which may roll back).
 */
const committedRows = new WeakMap<object, Map<string, Map<number, PublicRow>>>();
const COMMITTED_ROWS_MAX = 20_000;

function rowsOf(scope: SqlScope): Map<string, Map<number, PublicRow>> {
  let rows = committedRows.get(scope.executor);
  if (!rows) {
    rows = new Map();
    committedRows.set(scope.executor, rows);
  }
  return rows;
}

function remember(scope: SqlScope, rows: readonly PublicRow[]): void {
  if (scope.inTransaction) return;
  const known = rowsOf(scope);
  for (const row of rows) {
    const versions = known.get(row.id) ?? new Map<number, PublicRow>();
    known.delete(row.id);
    known.set(row.id, versions);
    versions.set(num(row.version), row);
  }
  while (known.size > COMMITTED_ROWS_MAX) {
    const oldest = known.keys().next().value;
    if (oldest === undefined) break;
    known.delete(oldest);
  }
}

function remembered(scope: SqlScope, id: string, version: number): PublicRow | undefined {
  return rowsOf(scope).get(id)?.get(version);
}

/** An id created or deleted: rows of an earlier instance with that id must not be used. */
function forget(scope: SqlScope, id: string): void {
  rowsOf(scope).delete(id);
}

type UpdateArgs = Partial<InstancesTable> & {
  expectedId: string;
  expectedState: string;
  expectedVersion: number;
};
// Shape: the set columns, then "+version" when the version is checked too.
const UPDATE = new PreparedQuery<UpdateArgs, never>((db, args, shape) => {
  const [columns = "", versioned] = shape.split("|");
  const keys = columns.split(",").filter(Boolean) as (keyof InstancesTable)[];
  let query = db
    .updateTable("orch_instances")
    .set((eb) => ({ ...pick(args, keys), version: eb("version", "+", 1) }))
    .where("id", "=", args.expectedId)
    .where("state", "=", args.expectedState);
  if (versioned) query = query.where("version", "=", args.expectedVersion);
  return query;
});

function toInstance(row: PublicRow, secrets?: Record<string, string>): StoredInstance {
  const variables = fromJson<Record<string, string>>(row.variables, {});
  return {
    id: row.id,
    name: row.name,
    templateName: row.template_name,
    templateVersion: num(row.template_version),
    desiredState: row.desired_state as StoredInstance["desiredState"],
    state: row.state as InstanceState,
    failure: fromJson<FailureReason | null>(row.failure, null),
    nodeId: row.node_id,
    epoch: num(row.epoch),
    ports: fromJson<Record<string, number>>(row.ports, {}),
    resources: {
      memoryMb: num(row.memory_mb),
      cpu: cpuFromMillis(row.cpu_m),
      diskMb: num(row.disk_mb),
    },
    variables: secrets ? { ...variables, ...secrets } : variables,
    secretVariables: fromJson<string[]>(row.secret_names, []),
    reportSeq: num(row.report_seq),
    owner: row.owner,
    version: num(row.version),
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

function checkFailure(value: FailureReason | null): string | null {
  if (value === null) return null;
  if (typeof value !== "object") throw invalid("failure", "must be an object or null");
  checkOneOf("failure.kind", value.kind, FAILURE_KINDS);
  checkString("failure.message", value.message, MAX_TEXT, 0);
  if (value.exitCode !== undefined && value.exitCode !== null) {
    checkInt("failure.exitCode", value.exitCode, -(2 ** 31), 2 ** 31 - 1);
  }
  if (value.signal !== undefined && value.signal !== null) {
    checkString("failure.signal", value.signal, 32);
  }
  return toJson(value);
}

function checkStates(value: InstanceFilter["state"]): InstanceState[] | undefined {
  if (value === undefined) return undefined;
  const states: readonly unknown[] = Array.isArray(value) ? value : [value];
  return states.map((state) => checkOneOf("state", state, INSTANCE_STATES));
}

/** Can `from` become `to` through some trigger of the lifecycle? */
function reachable(from: InstanceState, to: InstanceState): boolean {
  return INSTANCE_TRIGGERS.some((trigger) => InstanceLifecycle.targets(from, trigger).includes(to));
}

type InstanceQuery = SelectQueryBuilder<Database, "orch_instances", object>;

function applyFilter<Q extends InstanceQuery>(query: Q, filter: InstanceFilter): Q {
  let result = query;
  const states = checkStates(filter.state);
  if (states) result = result.where("state", "in", states.length > 0 ? states : ["-"]) as Q;
  if (filter.desiredState !== undefined) {
    result = result.where(
      "desired_state",
      "=",
      checkOneOf("desiredState", filter.desiredState, DESIRED_STATES),
    ) as Q;
  }
  if (filter.nodeId !== undefined) result = result.where("node_id", "=", filter.nodeId) as Q;
  if (filter.templateName !== undefined) {
    result = result.where("template_name", "=", filter.templateName) as Q;
  }
  if (filter.owner !== undefined) result = result.where("owner", "=", filter.owner) as Q;
  return result;
}

export class SqlInstanceRepository implements InstanceRepository {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  async list(filter: InstanceFilter = {}): Promise<Page<StoredInstance>> {
    const limit =
      filter.limit === undefined ? undefined : checkInt("limit", filter.limit, 1, 10_000);
    const after =
      filter.after === undefined
        ? undefined
        : decodeCursor("after", filter.after, ["number", "string"]);
    const rows = await this.#scope.read((db) => {
      let query = applyFilter(db.selectFrom("orch_instances").select(PUBLIC_COLUMNS), filter);
      if (after) {
        const [createdAt, id] = after as [number, string];
        query = query.where((eb: ExpressionBuilder<Database, "orch_instances">) =>
          eb.or([
            eb("created_at", ">", createdAt),
            eb.and([eb("created_at", "=", createdAt), eb("id", ">", id)]),
          ]),
        );
      }
      query = query.orderBy("created_at").orderBy("id");
      if (limit !== undefined) query = query.limit(limit + 1);
      return query.execute();
    });
    remember(this.#scope, rows);
    const more = limit !== undefined && rows.length > limit;
    const items = (more ? rows.slice(0, limit) : rows).map((row) => toInstance(row));
    const last = items.at(-1);
    return {
      items,
      next: more && last ? encodeCursor([last.createdAt.getTime(), last.id]) : null,
    };
  }

  async count(filter: Omit<InstanceFilter, "limit" | "after"> = {}): Promise<number> {
    const row = await this.#scope.read((db) =>
      applyFilter(
        db.selectFrom("orch_instances").select((eb) => eb.fn.countAll().as("count")),
        filter,
      ).executeTakeFirstOrThrow(),
    );
    return num(row.count);
  }

  async countByState(): Promise<Partial<Record<InstanceState, number>>> {
    const rows = await this.#scope.read((db) =>
      db
        .selectFrom("orch_instances")
        .select(["state", (eb) => eb.fn.countAll().as("count")])
        .groupBy("state")
        .execute(),
    );
    return Object.fromEntries(rows.map((row) => [row.state, num(row.count)]));
  }

  async get(
    id: string,
    options: { includeSecrets?: boolean } = {},
  ): Promise<StoredInstance | null> {
    if (!options.includeSecrets) {
      const { rows } = await this.#scope.read((db) => SELECT_PUBLIC.execute(db, { id }));
      remember(this.#scope, rows);
      return rows[0] ? toInstance(rows[0]) : null;
    }
    const row = await this.#scope.read((db) =>
      db.selectFrom("orch_instances").selectAll().where("id", "=", id).executeTakeFirst(),
    );
    if (!row) return null;
    const { secret_values: sealed, ...rest } = row;
    const secrets =
      sealed === null
        ? {}
        : fromJson<Record<string, string>>(this.#scope.executor.cipher.open(sealed, row.id), {});
    return toInstance(rest, secrets);
  }

  async create(instance: NewInstance, at: Date): Promise<StoredInstance> {
    if (typeof instance !== "object" || instance === null) throw invalid("", "must be an object");
    const id = checkString("id", instance.id, MAX_ID);
    const variables = checkStringRecord("variables", instance.variables);
    for (const [key, value] of Object.entries(variables)) {
      checkString(`variables.${key}`, value, MAX_TEXT, 0);
    }
    const secretNames = [...new Set(instance.secretVariables ?? [])].sort();
    const secrets: Record<string, string> = {};
    for (const name of secretNames) {
      const value = variables[name];
      if (value === undefined) {
        throw invalid("secretVariables", `'${name}' is not one of the instance's variables`);
      }
      secrets[name] = value;
      delete variables[name];
    }
    const now = checkDate("at", at);
    const resources = checkResources("resources", instance.resources);
    const templateName = checkString("templateName", instance.templateName, MAX_NAME);
    const templateVersion = checkInt("templateVersion", instance.templateVersion, 1, 2 ** 31 - 1);
    const row: InstancesTable = {
      id,
      name: checkString("name", instance.name, MAX_NAME),
      template_name: templateName,
      template_version: templateVersion,
      desired_state: checkOneOf("desiredState", instance.desiredState, DESIRED_STATES),
      state: checkOneOf("state", instance.state, INSTANCE_STATES),
      failure: null,
      node_id: checkNullableString("nodeId", instance.nodeId, MAX_ID),
      epoch: checkInt("epoch", instance.epoch, 0, 2 ** 31 - 1),
      ports: toJson(checkPortRecord("ports", instance.ports)),
      memory_mb: resources.memoryMb,
      cpu_m: resources.cpuM,
      disk_mb: resources.diskMb,
      variables: toJson(variables),
      secret_names: toJson(secretNames),
      secret_values:
        secretNames.length > 0 ? this.#scope.executor.cipher.seal(toJson(secrets), id) : null,
      report_seq: 0,
      owner: checkNullableString("owner", instance.owner, MAX_ID),
      version: 1,
      created_at: now,
      updated_at: now,
    };
    await this.#scope.atomic(async (scope) => {
      // The shared lock on the template row keeps a concurrent template delete
      // from passing its "unused" check until this instance is committed.
      const latest = await templateLatest(scope, templateName);
      if (latest === null || latest < templateVersion) {
        throw new NotFoundError("template version", `${templateName}@${templateVersion}`);
      }
      forget(scope, id);
      await scope.write((db) => INSERT.execute(db, row));
    });
    const { secret_values: _, ...rest } = row;
    return toInstance(rest);
  }

  async update(
    id: string,
    expected: InstanceExpectation,
    change: InstanceChange,
    at: Date,
  ): Promise<StoredInstance> {
    const expectedState = checkOneOf("expected.state", expected?.state, INSTANCE_STATES);
    const expectedVersion =
      expected.version === undefined
        ? undefined
        : checkInt("expected.version", expected.version, 1, Number.MAX_SAFE_INTEGER);
    const set = this.#changes(change, checkDate("at", at));
    if (
      change.state !== undefined &&
      change.state !== expectedState &&
      !reachable(expectedState, change.state)
    ) {
      throw new IllegalTransitionError(
        expectedState,
        "update",
        `an instance cannot go from ${expectedState} to ${change.state}`,
        { details: { to: change.state } },
      );
    }
    const apply = async (scope: SqlScope): Promise<StoredInstance> => {
      const columns = Object.keys(set).sort();
      const shape = `${columns.join(",")}|${expectedVersion === undefined ? "" : "versioned"}`;
      const result = await scope.write((db) =>
        UPDATE.execute(
          db,
          {
            ...set,
            expectedId: id,
            expectedState,
            expectedVersion: expectedVersion ?? 0,
          },
          shape,
        ),
      );
      if (affected(result) === 0) {
        const current = await new SqlInstanceRepository(scope).get(id);
        if (!current) throw new NotFoundError("instance", id);
        throw new ConflictError(
          `instance '${id}' changed concurrently (expected ${expectedState}${expectedVersion === undefined ? "" : ` v${expectedVersion}`}, found ${current.state} v${current.version})`,
          {
            details: {
              reason: "stale",
              instanceId: id,
              expected: { state: expectedState, version: expectedVersion ?? null },
              actual: { state: current.state, version: current.version },
            },
          },
        );
      }
      if (change.state === "DESTROYED") await new SqlNodeRepository(scope).release(id);
      const before =
        expectedVersion === undefined ? undefined : remembered(scope, id, expectedVersion);
      // The version check passed, so the row was exactly `before`: the new one is known.
      if (before) return toInstance({ ...before, ...set, version: expectedVersion! + 1 });
      const updated = await new SqlInstanceRepository(scope).get(id);
      if (!updated) throw new NotFoundError("instance", id);
      return updated;
    };
    return change.state === "DESTROYED" ? this.#scope.atomic(apply) : apply(this.#scope);
  }

  async transition(
    id: string,
    transition: InstanceTransition,
  ): Promise<{ instance: StoredInstance; event: InstanceEvent }> {
    const expectedState = checkOneOf("expected.state", transition.expected?.state, INSTANCE_STATES);
    checkActor("actor", transition.actor);
    checkString("reason", transition.reason, MAX_TEXT, 0);
    const result = InstanceLifecycle.apply<InstanceState>(expectedState, transition.trigger, {
      at: transition.at,
      actor: transition.actor,
      reason: transition.reason,
      ...(transition.to === undefined ? {} : { to: transition.to }),
    });
    return this.#scope.atomic(async (scope) => {
      const instance = await new SqlInstanceRepository(scope).update(
        id,
        transition.expected,
        { ...transition.change, state: result.state },
        transition.at,
      );
      const event = await new SqlEventRepository(scope).append({
        instanceId: id,
        ...result.event,
      });
      return { instance, event };
    });
  }

  async delete(id: string): Promise<void> {
    await this.#scope.atomic(async (scope) => {
      const row = await scope.read((db) =>
        forUpdate(
          scope,
          db.selectFrom("orch_instances").select("state").where("id", "=", id),
        ).executeTakeFirst(),
      );
      if (!row) throw new NotFoundError("instance", id);
      if (row.state !== "DESTROYED") {
        throw new ConflictError(`instance '${id}' is ${row.state}, not DESTROYED`, {
          details: { reason: "not-destroyed", instanceId: id, state: row.state },
        });
      }
      await new SqlNodeRepository(scope).release(id);
      forget(scope, id);
      await scope.write((db) => db.deleteFrom("orch_instances").where("id", "=", id).execute());
    });
  }

  getPendingPlacement(id: string): Promise<PendingPlacementNote | null> {
    return getPendingPlacement(this.#scope, id);
  }

  setPendingPlacement(id: string, note: PendingPlacementNote | null): Promise<void> {
    return setPendingPlacement(this.#scope, id, note);
  }

  #changes(change: InstanceChange, now: number): Partial<InstancesTable> {
    if (typeof change !== "object" || change === null) throw invalid("change", "must be an object");
    const set: Partial<InstancesTable> = { updated_at: now };
    if (change.state !== undefined)
      set.state = checkOneOf("change.state", change.state, INSTANCE_STATES);
    if (change.desiredState !== undefined) {
      set.desired_state = checkOneOf("change.desiredState", change.desiredState, DESIRED_STATES);
    }
    if (change.failure !== undefined) set.failure = checkFailure(change.failure);
    if (change.nodeId !== undefined)
      set.node_id = checkNullableString("change.nodeId", change.nodeId, MAX_ID);
    if (change.epoch !== undefined)
      set.epoch = checkInt("change.epoch", change.epoch, 0, 2 ** 31 - 1);
    if (change.ports !== undefined)
      set.ports = toJson(checkPortRecord("change.ports", change.ports));
    if (change.templateVersion !== undefined) {
      set.template_version = checkInt(
        "change.templateVersion",
        change.templateVersion,
        1,
        2 ** 31 - 1,
      );
    }
    if (change.reportSeq !== undefined) {
      set.report_seq = checkInt("change.reportSeq", change.reportSeq, 0, Number.MAX_SAFE_INTEGER);
    }
    return set;
  }
}
