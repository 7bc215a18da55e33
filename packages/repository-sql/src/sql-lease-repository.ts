/**
 * Leases with fencing. The lease row is locked (MySQL) or the database is
 * (SQLite, one writer) while it is taken, renewed or checked, so exactly one
 * of concurrent acquirers wins; the epoch grows every time the lease changes
 * hands, and a write guarded by `assertHeld` inside a transaction holds the
 * row lock to its end, so a takeover cannot slip in before it commits.
 */
import {
  ConflictError,
  type Lease,
  type LeaseFence,
  type LeaseRepository,
} from "@orchestrator/core";
import { checkDate, checkInt, checkString, MAX_NAME, num, toDate } from "./codec.js";
import type { LeasesTable } from "./schema.js";
import type { SqlScope } from "./sql-executor.js";
import { affected, forShare, forUpdate } from "./sql-helpers.js";

function toLease(row: LeasesTable): Lease {
  return {
    name: row.name,
    holder: row.holder,
    epoch: num(row.epoch),
    expiresAt: toDate(row.expires_at),
  };
}

function checkFence(fence: LeaseFence): {
  name: string;
  holder: string;
  epoch: number;
  now: number;
} {
  return {
    name: checkString("fence.name", fence?.name, 128),
    holder: checkString("fence.holder", fence.holder, MAX_NAME),
    epoch: checkInt("fence.epoch", fence.epoch, 1, Number.MAX_SAFE_INTEGER),
    now: checkDate("fence.now", fence.now),
  };
}

export class SqlLeaseRepository implements LeaseRepository {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  async acquire(name: string, holder: string, ttlMs: number, now: Date): Promise<Lease | null> {
    checkString("name", name, 128);
    checkString("holder", holder, MAX_NAME);
    const ttl = checkInt("ttlMs", ttlMs, 1, 365 * 24 * 3600 * 1000);
    const at = checkDate("now", now);
    return this.#scope.atomic(async (scope) => {
      await scope.write((db) => {
        const insert = db
          .insertInto("orch_leases")
          .values({ name, holder: "", epoch: 0, expires_at: 0, updated_at: at });
        return (
          scope.flavor.name === "mysql"
            ? insert.onDuplicateKeyUpdate({ epoch: (eb) => eb.ref("epoch") })
            : insert.onConflict((conflict) => conflict.doNothing())
        ).execute();
      });
      const row = await scope.read((db) =>
        forUpdate(
          scope,
          db.selectFrom("orch_leases").selectAll().where("name", "=", name),
        ).executeTakeFirstOrThrow(),
      );
      const valid = num(row.expires_at) > at;
      if (valid && row.holder !== holder) return null;
      // Renewing a valid lease keeps its epoch; taking a free or expired one (even
      // back by its last holder, who may have been paused meanwhile) starts a new epoch.
      const epoch = valid ? num(row.epoch) : num(row.epoch) + 1;
      const next: LeasesTable = { name, holder, epoch, expires_at: at + ttl, updated_at: at };
      await scope.write((db) =>
        db
          .updateTable("orch_leases")
          .set({ holder, epoch, expires_at: next.expires_at, updated_at: at })
          .where("name", "=", name)
          .execute(),
      );
      return toLease(next);
    });
  }

  async release(name: string, holder: string): Promise<boolean> {
    const result = await this.#scope.write((db) =>
      db
        .updateTable("orch_leases")
        .set({ expires_at: 0 })
        .where("name", "=", name)
        .where("holder", "=", holder)
        .where("expires_at", ">", 0)
        .executeTakeFirst(),
    );
    return affected(result) > 0;
  }

  async get(name: string): Promise<Lease | null> {
    const row = await this.#scope.read((db) =>
      db
        .selectFrom("orch_leases")
        .selectAll()
        .where("name", "=", name)
        .where("epoch", ">", 0)
        .executeTakeFirst(),
    );
    return row ? toLease(row) : null;
  }

  async holds(fence: LeaseFence): Promise<boolean> {
    const checked = checkFence(fence);
    // Shared: a takeover (which writes the row) waits for this transaction,
    // while the holder's own fenced transactions may run side by side.
    const row = await this.#scope.read((db) =>
      forShare(
        this.#scope,
        db.selectFrom("orch_leases").selectAll().where("name", "=", checked.name),
      ).executeTakeFirst(),
    );
    return (
      row !== undefined &&
      row.holder === checked.holder &&
      num(row.epoch) === checked.epoch &&
      num(row.expires_at) > checked.now
    );
  }

  async assertHeld(fence: LeaseFence): Promise<void> {
    if (!(await this.holds(fence))) {
      throw new ConflictError(
        `lease '${fence.name}' is no longer held by '${fence.holder}' at epoch ${fence.epoch}`,
        {
          details: {
            reason: "lease-lost",
            lease: fence.name,
            holder: fence.holder,
            epoch: fence.epoch,
          },
        },
      );
    }
  }
}
