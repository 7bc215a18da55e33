/**
 * Rows deferred to the commit (SqlScope.defer): written once, together, in
 * the transaction; a rolled-back savepoint drops what was queued inside it;
 * what was queued before it survives; nothing is written on a rollback.
 */
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, PLAINTEXT_CIPHER } from "../src/index.js";
import { SqlExecutor, type SqlScope } from "../src/sql-executor.js";
import { flavorNamed } from "../src/sql-flavor.js";

const { db } = openDatabase("sqlite::memory:");
const executor = new SqlExecutor({ db, flavor: flavorNamed("sqlite")!, cipher: PLAINTEXT_CIPHER });
const writes: string[][] = [];
const write = async (scope: SqlScope, rows: string[]) => {
  writes.push(rows);
  for (const row of rows) await sql`insert into deferred (v) values (${row})`.execute(scope.db);
};
const stored = async () =>
  (await sql<{ v: string }>`select v from deferred order by rowid`.execute(db)).rows.map(
    (r) => r.v,
  );

beforeAll(async () => {
  await sql`create table deferred (v text not null)`.execute(db);
});
afterAll(() => db.destroy());

describe("deferred rows", () => {
  it("are written in one call before the commit, and read back after a flush", async () => {
    writes.length = 0;
    await executor.transaction(async (scope) => {
      scope.defer("t", "a", write);
      scope.defer("t", "b", write);
      expect(writes).toEqual([]);
      await scope.flushDeferred("t");
      expect(writes).toEqual([["a", "b"]]);
      scope.defer("t", "c", write);
    });
    expect(writes).toEqual([["a", "b"], ["c"]]);
    expect(await stored()).toEqual(["a", "b", "c"]);
  });

  it("queued inside a savepoint that is rolled back are dropped; the others stay", async () => {
    await sql`delete from deferred`.execute(db);
    await executor.transaction(async (scope) => {
      scope.defer("t", "before", write);
      await expect(
        scope.atomic(
          async (inner) => {
            inner.defer("t", "inside", write);
            throw new Error("refused");
          },
          { savepoint: true },
        ),
      ).rejects.toThrow("refused");
      await scope.atomic(
        async (inner) => {
          inner.defer("t", "kept", write);
        },
        { savepoint: true },
      );
      scope.defer("t", "after", write);
    });
    expect(await stored()).toEqual(["before", "kept", "after"]);
  });

  it("are not written when the transaction rolls back", async () => {
    await sql`delete from deferred`.execute(db);
    await expect(
      executor.transaction(async (scope) => {
        scope.defer("t", "lost", write);
        throw new Error("rolled back");
      }),
    ).rejects.toThrow("rolled back");
    expect(await stored()).toEqual([]);
  });

  it("need a transaction", () => {
    expect(() => executor.rootScope().defer("t", "x", write)).toThrow(/outside a transaction/);
  });
});
