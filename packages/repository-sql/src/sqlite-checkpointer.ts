/**
 * Moves SQLite WAL checkpoints off the event loop. A checkpoint copies the
 * WAL's pages into the database file and syncs both (tens of milliseconds on
 * a busy database); run by the connection that happens to commit, it stalls
 * every request for that long. A worker thread with its own connection runs
 * PASSIVE checkpoints instead, which never block the writer; the writer's own
 * automatic checkpoint stays as the backstop should the worker fall behind.
 *
 * The worker starts only once the WAL has grown past `startAfterPages`: a
 * short-lived or idle database (tests, a CLI command) never pays for a thread.
 */
import { statSync } from "node:fs";
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** Plain JavaScript run with `eval: true`, so it needs no build step or loader. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.filename, { timeout: 0 });
let closed = false;
let timer = null;
let last = { log: 0, checkpointed: 0 };
function round() {
  timer = null;
  if (closed) return;
  let progressed = false;
  try {
    // { busy, log: frames in the WAL, checkpointed: frames of them copied so far }
    const [row] = db.pragma("wal_checkpoint(PASSIVE)");
    if (row) {
      // Another round at once only while this one copied something new: a WAL
      // all copied (or held back by a reader) is looked at again after a pause.
      progressed = row.log !== last.log || row.checkpointed !== last.checkpointed;
      last = { log: row.log, checkpointed: row.checkpointed };
    }
  } catch {
    // The database is busy or going away: the next round tries again.
  }
  timer = setTimeout(round, progressed ? 1 : workerData.idleMs);
}
parentPort.on("message", (message) => {
  if (message !== "close") return;
  closed = true;
  if (timer) clearTimeout(timer);
  try { db.close(); } catch {}
  parentPort.close();
});
round();
`;

export interface SqliteCheckpointerOptions {
  /** The database file (its WAL is `<filename>-wal`). */
  filename: string;
  /** WAL size, in pages of 4 KiB, from which the worker runs (default 1,000). */
  startAfterPages?: number;
  /** Pause between checkpoints while the WAL has nothing new, in ms (default 50). */
  idleMs?: number;
}

export class SqliteCheckpointer {
  readonly #filename: string;
  readonly #startAfterBytes: number;
  readonly #idleMs: number;
  #commits = 0;
  #worker: Worker | null = null;
  #closed = false;

  constructor(options: SqliteCheckpointerOptions) {
    this.#filename = options.filename;
    this.#startAfterBytes = (options.startAfterPages ?? 1_000) * 4096;
    this.#idleMs = options.idleMs ?? 50;
  }

  /** True once the worker runs. */
  get running(): boolean {
    return this.#worker !== null;
  }

  /** Called on each commit; looks at the WAL's size every 64 commits. */
  committed(): void {
    if (this.#worker || this.#closed) return;
    this.#commits += 1;
    if (this.#commits % 64 !== 0) return;
    let size = 0;
    try {
      size = statSync(`${this.#filename}-wal`).size;
    } catch {
      return;
    }
    if (size >= this.#startAfterBytes) this.start();
  }

  /** Starts the worker now (idempotent). */
  start(): void {
    if (this.#worker || this.#closed) return;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driver: createRequire(import.meta.url).resolve("better-sqlite3"),
        filename: this.#filename,
        idleMs: this.#idleMs,
      },
    });
    // The writer's automatic checkpoint still bounds the WAL when the worker
    // cannot run (a failure here must not take the database down).
    worker.on("error", () => {
      if (this.#worker === worker) this.#worker = null;
      this.#closed = true;
    });
    worker.unref();
    this.#worker = worker;
  }

  /** Stops the worker and waits until its connection is closed. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = null;
    if (!worker) return;
    await new Promise<void>((resolve) => {
      worker.once("exit", () => resolve());
      worker.postMessage("close");
      // A worker stuck in a long checkpoint is not waited for forever.
      setTimeout(() => void worker.terminate(), 5_000).unref();
    });
  }
}
