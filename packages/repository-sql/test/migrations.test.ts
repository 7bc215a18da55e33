import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { OrchestratorError } from "@orchestrator/core";
import { Kysely, sql } from "kysely";
import { Migrator, NO_MIGRATIONS } from "kysely/migration";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bundledMigrationProvider,
  createSqliteDialect,
  type Database,
  MIGRATION_LOCK_TABLE,
  MIGRATION_TABLE,
  migrateToLatest,
  migrationStatus,
  migrationsFor,
  SqlRepositories,
} from "../src/index.js";
import { TABLES } from "../src/schema.js";
import { createMysqlDatabase, mysqlSkipReason } from "./helpers.js";

const CHILD = fileURLToPath(new URL("./fixtures/migrate-child.ts", import.meta.url));

/** Runs the migration in a separate Node process (SQLite's lock is between processes). */
function runChild(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--conditions=@orchestrator/source", "--import", "tsx", CHILD, url],
      { timeout: 60_000 },
      (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}

const LATEST = Object.keys(migrationsFor("sqlite")).sort().at(-1)!;

function sqliteMemory(): Kysely<Database> {
  return new Kysely<Database>({ dialect: createSqliteDialect({ filename: ":memory:" }) });
}

/** Table name → sorted column names, as the database describes itself. */
async function schemaOf(db: Kysely<Database>): Promise<Record<string, string[]>> {
  const tables = await db.introspection.getTables();
  return Object.fromEntries(
    tables
      .filter((table) => table.name.startsWith("orch_"))
      .map((table) => [table.name, table.columns.map((column) => column.name).sort()])
      .sort(([a], [b]) => String(a).localeCompare(String(b))),
  );
}

describe("migrations on SQLite", () => {
  it("go from empty to latest, and running them again changes nothing", async () => {
    const db = sqliteMemory();
    try {
      const empty = await migrationStatus(db);
      expect(empty).toMatchObject({ current: null, latest: LATEST, unknown: [], upToDate: false });
      expect(empty.pending).toEqual(Object.keys(migrationsFor("sqlite")).sort());

      const first = await migrateToLatest(db);
      expect(first).toEqual({ applied: empty.pending, current: LATEST });
      const second = await migrateToLatest(db);
      expect(second).toEqual({ applied: [], current: LATEST });

      const status = await migrationStatus(db);
      expect(status).toMatchObject({ current: LATEST, pending: [], upToDate: true });
      expect(status.applied.map((row) => row.name)).toEqual(empty.pending);
      expect(status.applied[0]?.executedAt).toBeInstanceOf(Date);
      const tables = Object.keys(await schemaOf(db));
      expect(tables).toEqual(
        [...TABLES, MIGRATION_TABLE, MIGRATION_LOCK_TABLE]
          .filter((t) => t.startsWith("orch_"))
          .sort(),
      );
    } finally {
      await db.destroy();
    }
  });

  it("can be rolled back to empty (every migration has a down)", async () => {
    const db = sqliteMemory();
    try {
      await migrateToLatest(db);
      const migrator = new Migrator({
        db,
        provider: bundledMigrationProvider("sqlite"),
        migrationTableName: MIGRATION_TABLE,
        migrationLockTableName: MIGRATION_LOCK_TABLE,
      });
      const { error } = await migrator.migrateTo(NO_MIGRATIONS);
      expect(error).toBeUndefined();
      expect(Object.keys(await schemaOf(db))).toEqual(
        [MIGRATION_LOCK_TABLE, MIGRATION_TABLE].sort(),
      );
      expect((await migrateToLatest(db)).current).toBe(LATEST);
    } finally {
      await db.destroy();
    }
  });

  it("lets three processes migrate one file at once (the others wait, then find nothing to do)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "orch-migrate-"));
    const url = `sqlite:${join(dir, "orchestrator.db")}`;
    try {
      const outputs = await Promise.all([1, 2, 3].map(() => runChild(url)));
      for (const output of outputs)
        expect(JSON.parse(output)).toEqual({ current: LATEST, upToDate: true });
      const brain = SqlRepositories.fromUrl(url, { migrate: false });
      await brain.init();
      expect((await migrationStatus(brain.db)).applied).toHaveLength(
        Object.keys(migrationsFor("sqlite")).length,
      );
      await brain.destroy();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses to start on a schema that is behind (migrate: false) or ahead of this version", async () => {
    const db = sqliteMemory();
    try {
      const checkOnly = new SqlRepositories({ db, migrate: false });
      const behind = await checkOnly.init().catch((error: unknown) => error);
      expect(OrchestratorError.hasCode(behind, "UNAVAILABLE")).toBe(true);
      expect(String(behind)).toMatch(/not up to date/);

      await new SqlRepositories({ db }).init();
      await checkOnly.init();

      await sql`insert into orch_migrations (name, timestamp) values ('9999-from-the-future', '2030-01-01T00:00:00.000Z')`.execute(
        db,
      );
      expect((await migrationStatus(db)).unknown).toEqual(["9999-from-the-future"]);
      const ahead = await migrateToLatest(db).catch((error: unknown) => error);
      expect(OrchestratorError.hasCode(ahead, "INTERNAL")).toBe(true);
      expect(String(ahead)).toMatch(/newer version/);
      const refused = await checkOnly.init().catch((error: unknown) => error);
      expect(OrchestratorError.hasCode(refused, "UNAVAILABLE")).toBe(true);
    } finally {
      await db.destroy();
    }
  });
});

describe.skipIf(mysqlSkipReason !== null)("migrations on MariaDB", () => {
  let database: Awaited<ReturnType<typeof createMysqlDatabase>>;
  const brains: SqlRepositories[] = [];

  beforeAll(async () => {
    database = await createMysqlDatabase();
    for (let i = 0; i < 3; i += 1) {
      brains.push(SqlRepositories.fromUrl(database.url, { mysql: { connectionLimit: 2 } }));
    }
  });

  afterAll(async () => {
    await Promise.all(brains.map((brain) => brain.destroy()));
    await database?.drop();
  });

  it("go from empty to latest under the lock when three Brains start at once; again is a no-op", async () => {
    const db = brains[0]!.db;
    expect(await migrationStatus(db)).toMatchObject({ current: null, upToDate: false });
    await Promise.all(brains.map((brain) => brain.init()));
    const status = await migrationStatus(db);
    expect(status).toMatchObject({ current: LATEST, pending: [], unknown: [], upToDate: true });
    expect(await migrateToLatest(db)).toEqual({ applied: [], current: LATEST });
  });

  it("creates the same tables and columns as on SQLite", async () => {
    const sqlite = sqliteMemory();
    try {
      await migrateToLatest(sqlite);
      expect(await schemaOf(brains[0]!.db)).toEqual(await schemaOf(sqlite));
    } finally {
      await sqlite.destroy();
    }
  });
});

if (mysqlSkipReason) {
  describe("migrations on MariaDB", () => {
    it.skip(`skipped: ${mysqlSkipReason}`, () => {});
  });
}
