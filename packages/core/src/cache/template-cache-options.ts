import type { Clock } from "../ports/clock.js";
import type { TemplateStorage } from "../ports/template-storage.js";

/** Something the cache wants the operator to know (the agent reports these). */
export interface TemplateCacheWarning {
  /**
   * `STALE`: storage failed, the cached copy was served.
   * `OVER_BUDGET`: every cached layer is in use, so the cache stays above `maxBytes`.
   * `CLEANUP_FAILED`: an old generation or evicted layer could not be deleted.
   */
  code: "STALE" | "OVER_BUDGET" | "CLEANUP_FAILED";
  /** The layer concerned, when there is one. */
  layer?: string;
  message: string;
  cause?: unknown;
}

/** Options of `TemplateCache`. */
export interface TemplateCacheOptions {
  /** Where layers come from. */
  storage: TemplateStorage;
  /** The cache folder (created on `init`); one process per folder (a lock file enforces it). */
  dir: string;
  /** Size budget in bytes; least recently used layers not in use are evicted beyond it. Default 10 GiB. */
  maxBytes?: number;
  /** Files downloaded in parallel by one sync. Default 8. */
  concurrency?: number;
  /**
   * How cached files are checked on each use: `stat` (default: size, mtime
   * and inode must be unchanged; catches edits and truncation) or `full`
   * (re-hash every file; catches silent bit flips, reads the whole layer).
   * After an unclean shutdown the first use of each layer is always `full`.
   */
  verify?: "stat" | "full";
  /**
   * Skip the storage round trip when the layer was revalidated less than this
   * long ago (default 0: every use lists the layer).
   */
  revalidateAfterMs?: number;
  /** Retries when the storage is unreachable and the layer is not cached (cold). */
  retry?: {
    /** Attempts in total, the first included. Default 4. */
    attempts?: number;
    /** Default 250 ms. */
    baseDelayMs?: number;
    /** Default 5000 ms. */
    maxDelayMs?: number;
  };
  /** Times a sync starts over when objects change under it (a publish during a download). Default 3. */
  syncAttempts?: number;
  /** Most files accepted in one layer. Default 200,000. */
  maxLayerFiles?: number;
  /** Receives warnings (stale copies served, budget exceeded). */
  onWarning?: (warning: TemplateCacheWarning) => void;
  /** Injected for tests: time of last use, revalidation age. */
  clock?: Clock;
  /** Injected for tests: waits between retries. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Injected for tests: jitter source in [0, 1). */
  random?: () => number;
}

/** How an `acquire` was satisfied, with what it cost. */
export interface LayerSyncReport {
  /**
   * `hit`: revalidated, nothing changed. `fresh`: revalidated recently, no
   * round trip. `created`: first download. `updated`: changed files fetched.
   * `stale`: storage failed; the cached copy was served.
   */
  outcome: "hit" | "fresh" | "created" | "updated" | "stale";
  /** Files in the storage's listing (0 when it was not listed). */
  listedFiles: number;
  /** Files downloaded (new, changed, or repaired). */
  downloadedFiles: number;
  downloadedBytes: number;
  /** Cached files found damaged locally and fetched again. */
  repairedFiles: number;
  /** Files deleted because the storage no longer has them. */
  removedFiles: number;
  /** Times the sync started over because objects changed under it. */
  restarts: number;
}

/** A leased, fully synced, verified local copy of a layer. Release it when done. */
export interface CachedLayer extends AsyncDisposable {
  readonly layer: string;
  /** Absolute folder holding the layer's files. Read-only: never write into it. */
  readonly dir: string;
  /** Version of the local copy; a later sync swaps in a new one without touching this folder. */
  readonly generation: string;
  readonly files: number;
  readonly bytes: number;
  /** True when storage failed and this is the last good copy (see the warning). */
  readonly stale: boolean;
  readonly report: LayerSyncReport;
  /** Ends the lease (idempotent); the folder may be swapped or evicted afterwards. */
  release(): void;
}

/** One cached layer as `status()` shows it. */
export interface CachedLayerStatus {
  layer: string;
  generation: string;
  files: number;
  bytes: number;
  lastUsedAt: Date;
  /** Leases held on any of its generations. */
  leases: number;
  syncing: boolean;
}
