import type { PoolOptions } from "mysql2";

/** Options of `createMysqlDialect`. */
export interface MysqlDialectConfig {
  /** `mysql://user:password@host:port/database` (`mariadb://` also accepted). */
  url?: string;
  /** mysql2 pool options; they override what the URL says. */
  pool?: PoolOptions;
  /** Connections in the pool (default 10). */
  connectionLimit?: number;
  /**
   * How long a statement waits for a row lock before failing with a retryable
   * error, in seconds (default 5; MySQL's own default of 50 s would stall the
   * Brain's loops behind one stuck transaction).
   */
  lockWaitTimeoutSeconds?: number;
}
