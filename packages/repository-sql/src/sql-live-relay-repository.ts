/**
 * The live relay over SQL: watch declarations keyed by (instance, kind,
 * watcher) with an expiry, and an append-only item table with an
 * auto-increment id, pruned by age. Plain statements, no transactions: each
 * write stands alone and losing one costs a log line, never state.
 */
import type {
  LiveItem,
  LiveItemKind,
  LiveRelayRepository,
  LiveWatch,
  LiveWatchEntry,
  NewLiveItem,
} from "@orchestrator/core";
import {
  checkDate,
  checkInt,
  checkOneOf,
  checkString,
  fromJson,
  invalid,
  MAX_NAME,
  num,
  toDate,
  toJson,
} from "./codec.js";
import type { SqlScope } from "./sql-executor.js";

const KINDS: readonly LiveItemKind[] = ["log", "stats"];
const MAX_ID = 128;
/** One relayed item (a log line is cut at 16 KiB by the agent; a sample is small). */
const MAX_PAYLOAD_BYTES = 64 * 1024;
/** Rows per statement. */
const CHUNK = 200;

function checkEntry(path: string, entry: LiveWatchEntry): LiveWatchEntry {
  if (typeof entry !== "object" || entry === null) throw invalid(path, "must be an object");
  return {
    instanceId: checkString(`${path}.instanceId`, entry.instanceId, MAX_ID),
    kind: checkOneOf(`${path}.kind`, entry.kind, KINDS),
  };
}

export class SqlLiveRelayRepository implements LiveRelayRepository {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  async watch(watcher: string, entries: readonly LiveWatchEntry[], expiresAt: Date): Promise<void> {
    checkString("watcher", watcher, MAX_NAME);
    const expires = checkDate("expiresAt", expiresAt);
    const rows = entries.map((entry, i) => ({
      ...checkEntry(`entries[${i}]`, entry),
      watcher,
    }));
    for (let start = 0; start < rows.length; start += CHUNK) {
      const values = rows.slice(start, start + CHUNK).map((row) => ({
        instance_id: row.instanceId,
        kind: row.kind,
        watcher: row.watcher,
        expires_at: expires,
      }));
      await this.#scope.write((db) => {
        const insert = db.insertInto("orch_live_watches").values(values);
        return (
          this.#scope.flavor.name === "mysql"
            ? insert.onDuplicateKeyUpdate({ expires_at: expires })
            : insert.onConflict((conflict) =>
                conflict
                  .columns(["instance_id", "kind", "watcher"])
                  .doUpdateSet({ expires_at: expires }),
              )
        ).execute();
      });
    }
  }

  async unwatch(watcher: string, entries?: readonly LiveWatchEntry[]): Promise<void> {
    checkString("watcher", watcher, MAX_NAME);
    if (entries === undefined) {
      await this.#scope.write((db) =>
        db.deleteFrom("orch_live_watches").where("watcher", "=", watcher).execute(),
      );
      return;
    }
    for (const [i, raw] of entries.entries()) {
      const entry = checkEntry(`entries[${i}]`, raw);
      await this.#scope.write((db) =>
        db
          .deleteFrom("orch_live_watches")
          .where("watcher", "=", watcher)
          .where("instance_id", "=", entry.instanceId)
          .where("kind", "=", entry.kind)
          .execute(),
      );
    }
  }

  async listWatches(now: Date): Promise<LiveWatch[]> {
    const at = checkDate("now", now);
    const rows = await this.#scope.read((db) =>
      db
        .selectFrom("orch_live_watches")
        .select(["instance_id", "kind", "watcher"])
        .where("expires_at", ">", at)
        .orderBy("instance_id")
        .orderBy("kind")
        .orderBy("watcher")
        .execute(),
    );
    return rows.map((row) => ({
      instanceId: row.instance_id,
      kind: row.kind as LiveItemKind,
      watcher: row.watcher,
    }));
  }

  async append(items: readonly NewLiveItem[]): Promise<void> {
    const rows = items.map((item, i) => {
      const path = `items[${i}]`;
      const payload = toJson(item.payload);
      if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
        throw invalid(`${path}.payload`, `must be at most ${MAX_PAYLOAD_BYTES} bytes of JSON`);
      }
      return {
        instance_id: checkString(`${path}.instanceId`, item.instanceId, MAX_ID),
        kind: checkOneOf(`${path}.kind`, item.kind, KINDS),
        origin: checkString(`${path}.origin`, item.origin, MAX_NAME),
        payload,
        at: checkDate(`${path}.at`, item.at),
      };
    });
    for (let start = 0; start < rows.length; start += CHUNK) {
      const values = rows.slice(start, start + CHUNK);
      await this.#scope.write((db) => db.insertInto("orch_live_items").values(values).execute());
    }
  }

  async listItems(
    afterId: number,
    filter: { instanceIds: readonly string[]; exceptOrigin?: string },
    limit: number,
  ): Promise<LiveItem[]> {
    const after = checkInt("afterId", afterId, 0, Number.MAX_SAFE_INTEGER);
    const max = checkInt("limit", limit, 1, 10_000);
    const instanceIds = filter.instanceIds.map((id, i) =>
      checkString(`filter.instanceIds[${i}]`, id, MAX_ID),
    );
    if (instanceIds.length === 0) return [];
    const except =
      filter.exceptOrigin === undefined
        ? undefined
        : checkString("filter.exceptOrigin", filter.exceptOrigin, MAX_NAME);
    const rows = await this.#scope.read((db) => {
      let query = db
        .selectFrom("orch_live_items")
        .selectAll()
        .where("id", ">", after)
        .where("instance_id", "in", instanceIds);
      if (except !== undefined) query = query.where("origin", "<>", except);
      return query.orderBy("id").limit(max).execute();
    });
    return rows.map((row) => ({
      id: num(row.id),
      instanceId: row.instance_id,
      kind: row.kind as LiveItemKind,
      origin: row.origin,
      payload: fromJson(row.payload, null),
      at: toDate(row.at),
    }));
  }

  async lastItemId(): Promise<number> {
    const row = await this.#scope.read((db) =>
      db
        .selectFrom("orch_live_items")
        .select((eb) => eb.fn.max("id").as("id"))
        .executeTakeFirst(),
    );
    return row?.id === null || row?.id === undefined ? 0 : num(row.id);
  }

  async prune(before: Date): Promise<number> {
    const at = checkDate("before", before);
    await this.#scope.write((db) =>
      db.deleteFrom("orch_live_watches").where("expires_at", "<=", at).execute(),
    );
    const result = await this.#scope.write((db) =>
      db.deleteFrom("orch_live_items").where("at", "<", at).executeTakeFirst(),
    );
    return Number(result.numDeletedRows);
  }
}
