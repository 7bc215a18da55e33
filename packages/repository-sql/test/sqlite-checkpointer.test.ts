import { statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteCheckpointer } from "../src/sqlite-checkpointer.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function walDatabase() {
  const dir = await mkdtemp(join(tmpdir(), "orch-checkpoint-"));
  dirs.push(dir);
  const filename = join(dir, "db.sqlite");
  const db = new BetterSqlite3(filename);
  db.pragma("journal_mode = WAL");
  // Only the worker may checkpoint: the database file grows only through it.
  db.pragma("wal_autocheckpoint = 0");
  db.exec("create table t (id integer primary key, payload text not null)");
  return { db, filename };
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("SqliteCheckpointer", () => {
  it("stays idle while the WAL is small, then checkpoints from a worker thread", async () => {
    const { db, filename } = await walDatabase();
    const checkpointer = new SqliteCheckpointer({ filename, startAfterPages: 64, idleMs: 5 });
    const insert = db.prepare("insert into t (payload) values (?)");
    try {
      insert.run("small");
      for (let i = 0; i < 64; i += 1) checkpointer.committed();
      expect(checkpointer.running).toBe(false);

      const before = statSync(filename).size;
      const payload = "x".repeat(2000);
      db.transaction(() => {
        for (let i = 0; i < 500; i += 1) insert.run(payload);
      })();
      expect(statSync(`${filename}-wal`).size).toBeGreaterThan(64 * 4096);
      for (let i = 0; i < 64; i += 1) checkpointer.committed();
      expect(checkpointer.running).toBe(true);
      // The pages reach the database file although this connection never checkpointed.
      await until(() => statSync(filename).size > before + 500 * 2000);
      expect(db.prepare("select count(*) as n from t").get()).toEqual({ n: 501 });
    } finally {
      await checkpointer.close();
      db.close();
    }
    expect(checkpointer.running).toBe(false);
  });

  it("rests while the WAL holds nothing new (no busy loop on an idle database)", async () => {
    const { db, filename } = await walDatabase();
    const insert = db.prepare("insert into t (payload) values (?)");
    for (let i = 0; i < 100; i += 1) insert.run("y".repeat(2000));
    const checkpointer = new SqliteCheckpointer({ filename, startAfterPages: 1, idleMs: 50 });
    try {
      checkpointer.start();
      const copiedSize = 100 * 2000;
      await until(() => statSync(filename).size > copiedSize);
      // All copied, and nobody writes (so the WAL is never reset): the worker
      // must now sleep between looks, not call the checkpoint back to back.
      const before = process.cpuUsage();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const used = process.cpuUsage(before);
      expect((used.user + used.system) / 1000).toBeLessThan(30);
    } finally {
      await checkpointer.close();
      db.close();
    }
  });

  it("never starts after close", async () => {
    const { db, filename } = await walDatabase();
    const checkpointer = new SqliteCheckpointer({ filename, startAfterPages: 0 });
    await checkpointer.close();
    checkpointer.start();
    for (let i = 0; i < 64; i += 1) checkpointer.committed();
    expect(checkpointer.running).toBe(false);
    db.close();
  });
});
