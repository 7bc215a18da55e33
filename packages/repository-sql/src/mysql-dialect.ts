/**
 * The MySQL/MariaDB dialect for kysely over a mysql2 pool, configured for this
 * package. Connection loss is handled by the pool: a connection the server
 * closed (restart, `KILL`, network) leaves the pool on its `end`/`error`
 * event and the next request opens a fresh one; TCP keep-alive finds dead
 * peers; statements that never reached the server are resent (see
 * `SqlExecutor`). Every new connection gets READ COMMITTED (fewer gap locks,
 * fewer deadlocks), a short lock wait and strict SQL mode.
 */
import { CompiledQuery, type Dialect, MysqlDialect } from "kysely";
import { createPool, type PoolOptions } from "mysql2";
import type { MysqlDialectConfig } from "./mysql-dialect-config.js";

export type { MysqlDialectConfig } from "./mysql-dialect-config.js";

/** Pool options from a `mysql://` URL (credentials percent-decoded; query options read). */
export function mysqlPoolOptionsFromUrl(url: string): PoolOptions {
  const parsed = new URL(url);
  if (parsed.protocol !== "mysql:" && parsed.protocol !== "mariadb:") {
    throw new TypeError(`not a mysql:// URL: ${parsed.protocol}`);
  }
  const options: PoolOptions = {
    host: parsed.hostname || "127.0.0.1",
    port: parsed.port ? Number(parsed.port) : 3306,
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
  };
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
  if (database) options.database = database;
  const limit = parsed.searchParams.get("connectionLimit");
  if (limit !== null) options.connectionLimit = Number(limit);
  const ssl = parsed.searchParams.get("ssl");
  if (ssl === "true" || ssl === "required") options.ssl = { rejectUnauthorized: true };
  if (ssl === "insecure") options.ssl = { rejectUnauthorized: false };
  const socketPath = parsed.searchParams.get("socket");
  if (socketPath) options.socketPath = socketPath;
  return options;
}

/** The pool options this package uses, merged over the caller's. */
export function mysqlPoolOptions(config: MysqlDialectConfig): PoolOptions {
  const fromUrl = config.url ? mysqlPoolOptionsFromUrl(config.url) : {};
  const limit = config.connectionLimit ?? config.pool?.connectionLimit ?? fromUrl.connectionLimit;
  return {
    connectTimeout: 10_000,
    enableKeepAlive: true,
    keepAliveInitialDelay: 10_000,
    idleTimeout: 60_000,
    waitForConnections: true,
    // Exact comparisons everywhere (hashes, names), as in SQLite.
    charset: "UTF8MB4_BIN",
    // BIGINT below 2^53 as numbers; SUM()/DECIMAL as numbers.
    supportBigNumbers: true,
    bigNumberStrings: false,
    decimalNumbers: true,
    // A hostile server must not read client files through LOAD DATA LOCAL.
    flags: ["-LOCAL_FILES"],
    ...fromUrl,
    ...config.pool,
    connectionLimit: limit ?? 10,
    multipleStatements: false,
  };
}

/** A kysely dialect over a mysql2 pool (created on first use). */
export function createMysqlDialect(config: MysqlDialectConfig): Dialect {
  const lockWait = Math.max(1, Math.floor(config.lockWaitTimeoutSeconds ?? 5));
  return new MysqlDialect({
    pool: async () => createPool(mysqlPoolOptions(config)),
    onCreateConnection: async (connection) => {
      await connection.executeQuery(
        CompiledQuery.raw("set session transaction isolation level read committed"),
      );
      await connection.executeQuery(
        CompiledQuery.raw(
          `set session innodb_lock_wait_timeout = ${lockWait}, sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE', time_zone = '+00:00'`,
        ),
      );
    },
  });
}
