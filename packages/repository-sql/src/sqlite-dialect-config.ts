/** Options of `createSqliteDialect`. */
export interface SqliteDialectConfig {
  /** Path of the database file (its folder is created), or `:memory:`. */
  filename: string;
  /** How long a writer waits for another process holding the write lock, in ms (default 5,000). */
  busyTimeoutMs?: number;
  /** How many prepared statements are kept for reuse (default 256). */
  statementCacheSize?: number;
  /**
   * `synchronous` pragma for files (default `NORMAL`: with WAL, a crash of the
   * machine may lose the last commits but never corrupts; `FULL` syncs every commit).
   */
  synchronous?: "OFF" | "NORMAL" | "FULL";
  /**
   * WAL pages written between automatic checkpoints (default 10,000 pages,
   * about 40 MiB; SQLite's own default is 1,000). Fewer checkpoints mean fewer
   * disk syncs; the WAL file is truncated back after a checkpoint.
   */
  walAutocheckpointPages?: number;
  /**
   * Checkpoint from a worker thread once the WAL passes 1,000 pages (default
   * true for files), so no commit on the event loop pays for a checkpoint;
   * `walAutocheckpointPages` then only applies if the worker falls behind.
   */
  backgroundCheckpoints?: boolean;
}
