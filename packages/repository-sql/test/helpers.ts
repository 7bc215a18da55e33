/**
 * Test databases: SQLite in memory or in a scratch file, and MariaDB/MySQL
 * (`ORCH_TEST_MYSQL_URL`): each test file gets a fresh `orch_*` database,
 * migrated once, emptied between tests and dropped afterwards.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RepositoryHarness } from "@orchestrator/core/testing";
import { testServiceEnv, testServiceSkipReason } from "@orchestrator/core/testing";
import { createConnection } from "mysql2/promise";
import { clearAllData, SqlRepositories, type SqlRepositoriesConfig } from "../src/index.js";

export type HarnessOptions = Omit<SqlRepositoriesConfig, "db" | "flavor" | "destroyDatabase">;

/** Why MySQL tests are skipped here, or null when they run. */
export const mysqlSkipReason = testServiceSkipReason("mysql");

export async function sqliteMemoryHarness(
  options: HarnessOptions = {},
): Promise<RepositoryHarness> {
  const repositories = SqlRepositories.fromUrl("sqlite::memory:", options);
  return {
    repositories,
    reset: () => clearAllData(repositories.db),
    destroy: () => repositories.destroy(),
  };
}

export async function sqliteFileHarness(options: HarnessOptions = {}): Promise<RepositoryHarness> {
  const dir = await mkdtemp(join(tmpdir(), "orch-sqlite-"));
  const repositories = SqlRepositories.fromUrl(
    `sqlite:${join(dir, "data", "orchestrator.db")}`,
    options,
  );
  return {
    repositories,
    reset: () => clearAllData(repositories.db),
    destroy: async () => {
      await repositories.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh, empty MySQL database (`orch_t_<random>`) and how to drop it. */
export async function createMysqlDatabase(): Promise<{
  url: string;
  name: string;
  drop(): Promise<void>;
}> {
  const env = testServiceEnv("mysql");
  if (!env) throw new Error(mysqlSkipReason ?? "mysql not configured");
  const base = new URL(env.ORCH_TEST_MYSQL_URL!);
  const name = `orch_t_${randomBytes(6).toString("hex")}`;
  const admin = await createConnection({
    host: base.hostname,
    port: Number(base.port || 3306),
    user: decodeURIComponent(base.username),
    password: decodeURIComponent(base.password),
  });
  try {
    await admin.query(`create database \`${name}\` character set utf8mb4 collate utf8mb4_bin`);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const connection = await createConnection({
        host: base.hostname,
        port: Number(base.port || 3306),
        user: decodeURIComponent(base.username),
        password: decodeURIComponent(base.password),
      });
      try {
        await connection.query(`drop database if exists \`${name}\``);
      } finally {
        await connection.end();
      }
    },
  };
}

export async function mysqlHarness(
  options: HarnessOptions & { connectionLimit?: number } = {},
): Promise<RepositoryHarness & { url: string }> {
  const database = await createMysqlDatabase();
  const { connectionLimit, ...config } = options;
  const repositories = SqlRepositories.fromUrl(database.url, {
    ...config,
    mysql: { connectionLimit: connectionLimit ?? 10 },
  });
  return {
    url: database.url,
    repositories,
    reset: () => clearAllData(repositories.db),
    destroy: async () => {
      await repositories.destroy();
      await database.drop();
    },
  };
}
