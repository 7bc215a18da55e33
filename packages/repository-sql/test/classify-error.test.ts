import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OrchestratorError } from "@orchestrator/core";
import BetterSqlite3 from "better-sqlite3";
import { createConnection } from "mysql2/promise";
import { describe, expect, it } from "vitest";
import { failureOf, toOrchestratorError } from "../src/classify-error.js";
import { classifyMysqlError, classifySqliteError } from "../src/index.js";
import { createMysqlDatabase, mysqlSkipReason } from "./helpers.js";

const sqliteError = (code: string) => Object.assign(new Error(`sqlite ${code}`), { code });
const mysqlError = (errno: number, code: string) =>
  Object.assign(new Error(`Duplicate entry 'top-secret-hash' for key 'x' (${code})`), {
    errno,
    code,
  });

describe("classifySqliteError", () => {
  it.each([
    ["SQLITE_CONSTRAINT_UNIQUE", "conflict", "duplicate"],
    ["SQLITE_CONSTRAINT_PRIMARYKEY", "conflict", "duplicate"],
    ["SQLITE_CONSTRAINT_FOREIGNKEY", "conflict", "reference"],
    ["SQLITE_CONSTRAINT_NOTNULL", "invalid", "constraint"],
    ["SQLITE_BUSY", "transient", "busy"],
    ["SQLITE_BUSY_SNAPSHOT", "transient", "busy"],
    ["SQLITE_LOCKED", "transient", "busy"],
    ["SQLITE_IOERR_WRITE", "connection", "storage"],
    ["SQLITE_FULL", "connection", "storage"],
    ["SQLITE_READONLY", "connection", "storage"],
    ["SQLITE_ERROR", "unknown", "sqlite"],
  ])("%s → %s (%s)", (code, kind, reason) => {
    expect(classifySqliteError(sqliteError(code))).toMatchObject({ kind, reason, code });
  });

  it("ignores errors that are not SQLite's", () => {
    expect(classifySqliteError(new Error("boom"))).toBeNull();
    expect(classifySqliteError(Object.assign(new Error("x"), { code: "ENOENT" }))).toBeNull();
    expect(classifySqliteError("text")).toBeNull();
  });

  it("classifies a real SQLITE_BUSY from a second writer", async () => {
    const dir = await mkdtemp(join(tmpdir(), "orch-busy-"));
    const file = join(dir, "db.sqlite");
    const first = new BetterSqlite3(file);
    const second = new BetterSqlite3(file, { timeout: 0 });
    try {
      first.exec("create table t (a integer)");
      first.exec("begin immediate");
      const error = (() => {
        try {
          second.exec("begin immediate");
          return null;
        } catch (caught) {
          return caught;
        }
      })();
      expect(classifySqliteError(error)).toMatchObject({ kind: "transient", reason: "busy" });
      first.exec("rollback");
    } finally {
      first.close();
      second.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("classifyMysqlError", () => {
  it.each([
    [1062, "ER_DUP_ENTRY", "conflict", "duplicate"],
    [1452, "ER_NO_REFERENCED_ROW_2", "conflict", "reference"],
    [1213, "ER_LOCK_DEADLOCK", "transient", "deadlock"],
    [1205, "ER_LOCK_WAIT_TIMEOUT", "transient", "lock-timeout"],
    [1406, "ER_DATA_TOO_LONG", "invalid", "value"],
    [1927, "ER_CONNECTION_KILLED", "connection", "connection-lost"],
    [1053, "ER_SERVER_SHUTDOWN", "connection", "connection-lost"],
    [1146, "ER_NO_SUCH_TABLE", "unknown", "mysql"],
  ])("errno %i (%s) → %s (%s)", (errno, code, kind, reason) => {
    expect(classifyMysqlError(mysqlError(errno, code))).toMatchObject({ kind, reason });
  });

  it("tells whether a lost connection ever received the statement", () => {
    const closed = Object.assign(
      new Error("Can't add new command when connection is in closed state"),
      { fatal: true },
    );
    expect(classifyMysqlError(closed)).toMatchObject({ kind: "connection", neverSent: true });
    const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    expect(classifyMysqlError(refused)).toMatchObject({ kind: "connection", neverSent: true });
    const lost = Object.assign(new Error("Connection lost"), {
      code: "PROTOCOL_CONNECTION_LOST",
      fatal: true,
    });
    expect(classifyMysqlError(lost)).toMatchObject({ kind: "connection", neverSent: false });
    const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    expect(classifyMysqlError(reset)).toMatchObject({ kind: "connection", neverSent: false });
  });

  it("ignores errors that are not MySQL's", () => {
    expect(classifyMysqlError(new Error("boom"))).toBeNull();
    expect(classifyMysqlError(null)).toBeNull();
  });
});

describe("toOrchestratorError", () => {
  it("maps each kind to core's typed errors without quoting the driver's message", () => {
    const cases = [
      [mysqlError(1062, "ER_DUP_ENTRY"), "CONFLICT", false],
      [mysqlError(1213, "ER_LOCK_DEADLOCK"), "UNAVAILABLE", true],
      [mysqlError(1927, "ER_CONNECTION_KILLED"), "UNAVAILABLE", true],
      [mysqlError(1406, "ER_DATA_TOO_LONG"), "VALIDATION_FAILED", false],
      [mysqlError(1146, "ER_NO_SUCH_TABLE"), "INTERNAL", false],
    ] as const;
    for (const [raw, code, retryable] of cases) {
      const error = toOrchestratorError(raw, classifyMysqlError);
      expect(OrchestratorError.hasCode(error, code)).toBe(true);
      expect((error as OrchestratorError).retryable).toBe(retryable);
      expect((error as OrchestratorError).message).not.toContain("top-secret-hash");
      expect(JSON.stringify(error)).not.toContain("top-secret-hash");
      expect((error as OrchestratorError).cause).toBe(raw);
      expect(failureOf(error)?.code).toBe(raw.code);
    }
  });

  it("passes typed errors and unknown errors through unchanged", () => {
    const typed = new OrchestratorError("NOT_FOUND", "x");
    expect(toOrchestratorError(typed, classifyMysqlError)).toBe(typed);
    const plain = new TypeError("bug");
    expect(toOrchestratorError(plain, classifyMysqlError)).toBe(plain);
  });
});

describe.skipIf(mysqlSkipReason !== null)("classifyMysqlError on a real server", () => {
  it("classifies duplicate keys and lock wait timeouts as MariaDB reports them", async () => {
    const database = await createMysqlDatabase();
    const url = new URL(database.url);
    const options = {
      host: url.hostname,
      port: Number(url.port || 3306),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database: database.name,
    };
    const a = await createConnection(options);
    const b = await createConnection(options);
    try {
      await a.query("create table t (id int primary key, v int)");
      await a.query("insert into t values (1, 0)");
      const duplicate = await a.query("insert into t values (1, 0)").catch((error) => error);
      expect(classifyMysqlError(duplicate)).toMatchObject({
        kind: "conflict",
        reason: "duplicate",
      });

      await b.query("set session innodb_lock_wait_timeout = 1");
      await a.query("begin");
      await a.query("update t set v = 1 where id = 1");
      const timeout = await b.query("update t set v = 2 where id = 1").catch((error) => error);
      expect(classifyMysqlError(timeout)).toMatchObject({
        kind: "transient",
        reason: "lock-timeout",
      });
      await a.query("rollback");
    } finally {
      await a.end();
      await b.end();
      await database.drop();
    }
  });
});
