/**
 * How every repository talks to the database: errors classified in one place,
 * transactions retried with jittered backoff when the database says so, and a
 * guard against using the root repositories inside a transaction (on SQLite
 * that would wait forever for the one connection the transaction holds).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { OrchestratorError } from "@orchestrator/core";
import { type Kysely, sql } from "kysely";
import { failureOf, toOrchestratorError } from "./classify-error.js";
import type { Database } from "./schema.js";
import type { SecretCipher } from "./secret-cipher.js";
import type { SqlFlavor } from "./sql-flavor.js";

/** When and how fast to retry. */
export interface RetryPolicy {
  /** Tries in all for a retryable failure (default 5). */
  maxAttempts: number;
  /** First backoff ceiling, doubled per attempt (default 5 ms). */
  baseDelayMs: number;
  /** Largest backoff ceiling (default 250 ms). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 5,
  maxDelayMs: 250,
};

interface TransactionMarker {
  active: boolean;
}

export class SqlExecutor {
  readonly root: Kysely<Database>;
  readonly flavor: SqlFlavor;
  readonly retry: RetryPolicy;
  readonly cipher: SecretCipher;
  readonly #transactions = new AsyncLocalStorage<TransactionMarker>();
  readonly #random: () => number;

  constructor(options: {
    db: Kysely<Database>;
    flavor: SqlFlavor;
    cipher: SecretCipher;
    retry?: Partial<RetryPolicy>;
    random?: () => number;
  }) {
    this.root = options.db;
    this.flavor = options.flavor;
    this.cipher = options.cipher;
    this.retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.#random = options.random ?? Math.random;
  }

  /** The scope of the root connection pool (each call autocommits or opens its own transaction). */
  rootScope(): SqlScope {
    return new SqlScope(this.root, this, false);
  }

  /** Turns a driver error into core's typed error (others pass through). */
  classify(error: unknown): unknown {
    return toOrchestratorError(error, this.flavor.classify);
  }

  /** Full-jitter backoff before attempt `attempt + 1`. */
  backoffMs(attempt: number): number {
    const ceiling = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
    return Math.floor(this.#random() * ceiling);
  }

  /** Throws when called from inside a transaction's work through the root repositories. */
  assertOutsideTransaction(): void {
    if (this.#transactions.getStore()?.active) {
      throw new OrchestratorError(
        "INTERNAL",
        "root repositories used inside a transaction: use the repositories passed to the transaction's work (and no nested transaction)",
      );
    }
  }

  /**
   * Runs `work` in a transaction, retrying the whole of it on a transient
   * failure (deadlock, lock wait timeout, busy) and on a lost connection that
   * happened before the commit was sent (the server rolled the work back).
   * A connection lost during the commit is not retried: it may have committed.
   */
  async transaction<T>(
    work: (scope: SqlScope) => Promise<T>,
    maxAttempts = this.retry.maxAttempts,
  ): Promise<T> {
    this.assertOutsideTransaction();
    for (let attempt = 1; ; attempt += 1) {
      const marker: TransactionMarker = { active: true };
      let workDone = false;
      try {
        return await this.#transactions.run(marker, () =>
          this.root.transaction().execute(async (trx) => {
            const scope = new SqlScope(trx, this, true);
            const result = await work(scope);
            await scope.runBeforeCommit();
            workDone = true;
            return result;
          }),
        );
      } catch (error) {
        const classified = this.classify(error);
        const failure = failureOf(classified);
        const retryable =
          failure !== undefined &&
          (failure.kind === "transient" || (failure.kind === "connection" && !workDone));
        if (!retryable || attempt >= maxAttempts) throw classified;
      } finally {
        marker.active = false;
      }
      await sleep(this.backoffMs(attempt));
    }
  }
}

/** A connection or a transaction, with the executor's error handling. */
export class SqlScope {
  readonly db: Kysely<Database>;
  readonly executor: SqlExecutor;
  readonly inTransaction: boolean;
  /**
   * Inside a transaction: reads that cannot change before it ends (rows it
   * has locked), by key, so a batch of writes does not repeat them. Whoever
   * changes such a row in the transaction deletes its key.
   */
  readonly memo = new Map<string, unknown>();
  readonly #beforeCommit: Array<() => Promise<void>> = [];
  readonly #deferred = new Map<string, DeferredRows>();
  #savepointDepth = 0;

  constructor(db: Kysely<Database>, executor: SqlExecutor, inTransaction: boolean) {
    this.db = db;
    this.executor = executor;
    this.inTransaction = inTransaction;
  }

  get flavor(): SqlFlavor {
    return this.executor.flavor;
  }

  /**
   * Runs `hook` in the transaction after its work, just before the commit
   * (say, to write a counter once instead of once per row). Transactions only.
   */
  beforeCommit(hook: () => Promise<void>): void {
    if (!this.inTransaction)
      throw new OrchestratorError("INTERNAL", "beforeCommit outside a transaction");
    this.#beforeCommit.push(hook);
  }

  /** Runs the `beforeCommit` hooks (hooks added meanwhile included), in order, and writes deferred rows. */
  async runBeforeCommit(): Promise<void> {
    await this.flushDeferred();
    for (let index = 0; index < this.#beforeCommit.length; index += 1) {
      await this.#beforeCommit[index]!();
    }
    await this.flushDeferred();
  }

  /**
   * Queues `row` to be written with the other rows of `key` by one `write`
   * call (one multi-row statement) before the commit, or earlier through
   * `flushDeferred`. Only for rows whose insert cannot be refused (the caller
   * already knows it succeeds, e.g. a seq it owns), since the error would
   * surface at the commit. A savepoint rolled back drops the rows queued
   * inside it. Transactions only.
   */
  defer<R>(key: string, row: R, write: (scope: SqlScope, rows: R[]) => Promise<void>): void {
    if (!this.inTransaction) throw new OrchestratorError("INTERNAL", "defer outside a transaction");
    let queued = this.#deferred.get(key);
    if (!queued) {
      queued = { rows: [], write: write as DeferredRows["write"] };
      this.#deferred.set(key, queued);
    }
    queued.rows.push(row);
  }

  /** The rows queued by `defer` under `key` and not written yet. */
  deferred<R>(key: string): readonly R[] {
    return (this.#deferred.get(key)?.rows ?? []) as R[];
  }

  /** Writes the rows queued by `defer` (of one key, or all) now, say before reading them back. */
  async flushDeferred(key?: string): Promise<void> {
    for (const [name, queued] of this.#deferred) {
      if ((key !== undefined && name !== key) || queued.rows.length === 0) continue;
      await queued.write(this, queued.rows.splice(0));
    }
  }

  /** Reads; outside a transaction, retried on transient failures and lost connections (reads are idempotent). */
  read<T>(query: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.#run(
      query,
      (failure) => failure.kind === "transient" || failure.kind === "connection",
    );
  }

  /**
   * One writing statement; outside a transaction, retried on transient
   * failures (the statement was rolled back) and on connections that never
   * sent it. Multi-statement writes use `atomic`.
   */
  write<T>(query: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.#run(
      query,
      (failure) =>
        failure.kind === "transient" || (failure.kind === "connection" && failure.neverSent),
    );
  }

  /**
   * Runs `work` atomically: in a new (retried) transaction, or inside the
   * current one. With `savepoint`, a failure inside the current transaction
   * also undoes what `work` wrote, so a caller that catches the error (say, a
   * refused reservation) can go on with the transaction as it was.
   */
  async atomic<T>(
    work: (scope: SqlScope) => Promise<T>,
    options: { savepoint?: boolean } = {},
  ): Promise<T> {
    if (!this.inTransaction) return this.executor.transaction(work);
    if (!options.savepoint) return work(this);
    // Named by depth: the same few names recur, so their statements stay prepared.
    this.#savepointDepth += 1;
    const name = `orch_sp_${this.#savepointDepth}`;
    try {
      return await this.#inSavepoint(name, work);
    } finally {
      this.#savepointDepth -= 1;
    }
  }

  async #inSavepoint<T>(name: string, work: (scope: SqlScope) => Promise<T>): Promise<T> {
    // Rows queued before the savepoint are written before it: what is queued
    // when it is rolled back was queued inside it, and is dropped.
    await this.flushDeferred();
    await this.write((db) => sql`savepoint ${sql.raw(name)}`.execute(db));
    let result: T;
    try {
      result = await work(this);
    } catch (error) {
      for (const queued of this.#deferred.values()) queued.rows.length = 0;
      // After a deadlock the server already rolled everything back and the
      // savepoint is gone: the original error is what matters.
      await sql`rollback to savepoint ${sql.raw(name)}`.execute(this.db).catch(() => undefined);
      throw error;
    }
    await this.write((db) => sql`release savepoint ${sql.raw(name)}`.execute(db));
    return result;
  }

  async #run<T>(
    query: (db: Kysely<Database>) => Promise<T>,
    retryable: (failure: NonNullable<ReturnType<typeof failureOf>>) => boolean,
  ): Promise<T> {
    if (this.inTransaction) {
      try {
        return await query(this.db);
      } catch (error) {
        throw this.executor.classify(error);
      }
    }
    this.executor.assertOutsideTransaction();
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await query(this.db);
      } catch (error) {
        const classified = this.executor.classify(error);
        const failure = failureOf(classified);
        if (!failure || !retryable(failure) || attempt >= this.executor.retry.maxAttempts) {
          throw classified;
        }
      }
      await sleep(this.executor.backoffMs(attempt));
    }
  }
}

interface DeferredRows {
  rows: unknown[];
  write: (scope: SqlScope, rows: unknown[]) => Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}
