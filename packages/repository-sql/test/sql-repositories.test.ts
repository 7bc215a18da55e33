/** Behaviour of this adapter beyond the port's suite: retries, backoff, misuse guards. */
import { OrchestratorError } from "@orchestrator/core";
import { Kysely } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import {
  createSqliteDialect,
  type Database,
  DEFAULT_RETRY_POLICY,
  SqlRepositories,
} from "../src/index.js";
import { PLAINTEXT_CIPHER } from "../src/secret-cipher.js";
import { SqlExecutor } from "../src/sql-executor.js";
import { SQLITE_FLAVOR } from "../src/sql-flavor.js";

const busy = () => Object.assign(new Error("database is locked"), { code: "SQLITE_BUSY" });
const open: SqlRepositories[] = [];

async function memory(config: ConstructorParameters<typeof SqlRepositories>[0] | object = {}) {
  const repositories = SqlRepositories.fromUrl("sqlite::memory:", config);
  open.push(repositories);
  await repositories.init();
  return repositories;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((repositories) => repositories.destroy()));
});

describe("transaction retries", () => {
  it("re-runs the work after a transient failure, then commits once", async () => {
    const repositories = await memory({ retry: { baseDelayMs: 1 } });
    let attempts = 0;
    const result = await repositories.transaction(async (set) => {
      attempts += 1;
      await set.audit.append({
        at: new Date(0),
        actor: { kind: "system", id: "t" },
        action: `attempt ${attempts}`,
        target: "x",
        details: {},
      });
      if (attempts < 3) throw busy();
      return "done";
    });
    expect(result).toBe("done");
    expect(attempts).toBe(3);
    // Only the committed attempt left an entry.
    expect((await repositories.audit.list()).items.map((e) => e.action)).toEqual(["attempt 3"]);
  });

  it("gives up after maxAttempts with a retryable UNAVAILABLE", async () => {
    const repositories = await memory({ retry: { baseDelayMs: 1 } });
    let attempts = 0;
    const error = await repositories
      .transaction(
        async () => {
          attempts += 1;
          throw busy();
        },
        { maxAttempts: 2 },
      )
      .catch((caught: unknown) => caught);
    expect(attempts).toBe(2);
    expect(OrchestratorError.hasCode(error, "UNAVAILABLE")).toBe(true);
    expect((error as OrchestratorError).retryable).toBe(true);
    expect((error as OrchestratorError).details.reason).toBe("busy");
  });

  it("does not retry conflicts or the work's own errors", async () => {
    const repositories = await memory();
    await repositories.users.create(
      { id: "u1", username: "a", role: "admin", disabled: false },
      "h",
      new Date(0),
    );
    let attempts = 0;
    const conflict = await repositories
      .transaction(async (set) => {
        attempts += 1;
        await set.users.create(
          { id: "u2", username: "A", role: "admin", disabled: false },
          "h",
          new Date(0),
        );
      })
      .catch((caught: unknown) => caught);
    expect(OrchestratorError.hasCode(conflict, "CONFLICT")).toBe(true);
    expect(attempts).toBe(1);
  });

  it("backs off with full jitter under a ceiling that doubles up to the maximum", () => {
    const db = new Kysely<Database>({ dialect: createSqliteDialect({ filename: ":memory:" }) });
    const executor = new SqlExecutor({
      db,
      flavor: SQLITE_FLAVOR,
      cipher: PLAINTEXT_CIPHER,
      random: () => 0.999999,
    });
    const ceilings = [1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => executor.backoffMs(attempt));
    expect(ceilings).toEqual([4, 9, 19, 39, 79, 159, 249, 249]);
    const none = new SqlExecutor({
      db,
      flavor: SQLITE_FLAVOR,
      cipher: PLAINTEXT_CIPHER,
      random: () => 0,
    });
    expect(none.backoffMs(3)).toBe(0);
    expect(DEFAULT_RETRY_POLICY.maxAttempts).toBe(5);
    void db.destroy();
  });
});

describe("misuse guards", () => {
  it("refuses the root repositories and nested transactions inside a transaction's work", async () => {
    const repositories = await memory();
    const root = await repositories
      .transaction(() => repositories.users.count())
      .catch((caught: unknown) => caught);
    expect(OrchestratorError.hasCode(root, "INTERNAL")).toBe(true);
    expect(String(root)).toMatch(/inside a transaction/);
    const nested = await repositories
      .transaction(() => repositories.transaction(async () => 1))
      .catch((caught: unknown) => caught);
    expect(OrchestratorError.hasCode(nested, "INTERNAL")).toBe(true);
    // Outside, and in later transactions, everything works.
    expect(await repositories.users.count()).toBe(0);
    expect(await repositories.transaction((set) => set.users.count())).toBe(0);
  });

  it("needs a known dialect or an explicit flavor", () => {
    const db = new Kysely<Database>({ dialect: createSqliteDialect({ filename: ":memory:" }) });
    expect(new SqlRepositories({ db }).flavor.name).toBe("sqlite");
    expect(new SqlRepositories({ db, flavor: "mysql" }).flavor.name).toBe("mysql");
    void db.destroy();
  });

  it("closes the database it opened from a URL, and only then", async () => {
    const owned = SqlRepositories.fromUrl("sqlite::memory:");
    await owned.init();
    await owned.destroy();
    await expect(owned.users.count()).rejects.toThrow();

    const db = new Kysely<Database>({ dialect: createSqliteDialect({ filename: ":memory:" }) });
    const borrowed = new SqlRepositories({ db });
    await borrowed.init();
    await borrowed.destroy();
    expect(await borrowed.users.count()).toBe(0);
    await db.destroy();
  });
});
