/**
 * The databases Brain tests run on: SQLite in memory always, MariaDB/MySQL when
 * `ORCH_TEST_MYSQL_URL` is set (always in CI). Each MySQL Brain gets a fresh
 * `orch_b_*` database, dropped at the end.
 */
import { randomBytes } from "node:crypto";
import { testServiceEnv, testServiceSkipReason } from "@orchestrator/core/testing";
import { createConnection } from "mysql2/promise";

export interface TestDatabase {
  name: "sqlite" | "mysql";
  /** A fresh database URL, and how to drop it. */
  create(): Promise<{ url: string; drop(): Promise<void> }>;
}

export const mysqlSkipReason = testServiceSkipReason("mysql");

async function adminConnection() {
  const base = new URL(testServiceEnv("mysql")!.ORCH_TEST_MYSQL_URL!);
  return {
    base,
    connection: await createConnection({
      host: base.hostname,
      port: Number(base.port || 3306),
      user: decodeURIComponent(base.username),
      password: decodeURIComponent(base.password),
    }),
  };
}

export const sqliteDatabase: TestDatabase = {
  name: "sqlite",
  create: async () => ({ url: "sqlite::memory:", drop: async () => undefined }),
};

export const mysqlDatabase: TestDatabase = {
  name: "mysql",
  async create() {
    const name = `orch_b_${randomBytes(6).toString("hex")}`;
    const { base, connection } = await adminConnection();
    try {
      await connection.query(
        `create database \`${name}\` character set utf8mb4 collate utf8mb4_bin`,
      );
    } finally {
      await connection.end();
    }
    const url = new URL(base);
    url.pathname = `/${name}`;
    return {
      url: url.toString(),
      async drop() {
        const admin = await adminConnection();
        try {
          await admin.connection.query(`drop database if exists \`${name}\``);
        } finally {
          await admin.connection.end();
        }
      },
    };
  },
};

/** SQLite always; MySQL when configured (a skipped MySQL run prints why). */
export const TEST_DATABASES: TestDatabase[] = mysqlSkipReason
  ? [sqliteDatabase]
  : [sqliteDatabase, mysqlDatabase];
if (mysqlSkipReason) console.warn(`[brain-server] ${mysqlSkipReason}`);
