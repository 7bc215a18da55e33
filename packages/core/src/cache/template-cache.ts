/**
 * `TemplateCache`: core's verified local copy of template layers, over any
 * `TemplateStorage`. Layout of its folder:
 *
 *   lock                          pid of the process using the folder
 *   staging/<layer>-<id>/         a sync being built (never read; removed on start)
 *   layers/<layer>/current.json   manifest of the current generation (the commit point)
 *   layers/<layer>/<generation>/  the files; never modified once committed
 *
 * A sync lists the layer (cheap: listing pages only), reuses unchanged files
 * by hard-linking them from the current generation, downloads new or changed
 * ones (pinned to the listed etag, size- and hash-checked), then renames the
 * staging folder into place and rewrites `current.json`. Readers hold a lease
 * on a generation folder, so a swap or an eviction never pulls files from
 * under them.
 */
import { createHash, type Hash, randomUUID } from "node:crypto";
import type { BigIntStats } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import {
  copyFile,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import {
  ConflictError,
  OrchestratorError,
  TemplateInvalidError,
  UnavailableError,
  ValidationError,
  type ValidationIssue,
} from "../errors/orchestrator-error.js";
import { PluginStateError } from "../plugin-guard.js";
import { type Clock, systemClock } from "../ports/clock.js";
import type { Plugin } from "../ports/plugin.js";
import {
  type ReadResult,
  type StoredFile,
  type TemplateStorage,
  type TemplateStorageCapabilities,
  templateStorageCapabilities,
} from "../ports/template-storage.js";
import { assertLayerName, objectKeyProblem } from "../template-document/names.js";
import { backoffDelay, mapLimit, sleep } from "./concurrency.js";
import {
  decodeLayer,
  encodeLayer,
  type LayerManifest,
  MANIFEST_FILE,
  type ManifestFile,
  newGeneration,
  readManifest,
  writeManifest,
} from "./layer-manifest.js";
import type {
  CachedLayer,
  CachedLayerStatus,
  LayerSyncReport,
  TemplateCacheOptions,
  TemplateCacheWarning,
} from "./template-cache-options.js";

const LOCAL_CONCURRENCY = 32;
const HASH_CHUNK_BYTES = 1024 * 1024;

/** The storage failed (as opposed to the local disk): may be served stale. */
class StorageFailure extends Error {
  constructor(readonly error: unknown) {
    super("storage failure");
  }
}

/** An object changed under the sync (re-published, deleted, corrupt in transit): list again. */
class SyncRestart extends Error {}

interface Generation {
  generation: string;
  manifest: LayerManifest;
  files: Map<string, ManifestFile>;
}

interface Waiter {
  resolve(lease: CachedLayer): void;
  reject(error: unknown): void;
  detach(): void;
}

interface Flight {
  waiters: Set<Waiter>;
  controller: AbortController;
  done: Promise<void>;
}

interface LayerEntry {
  layer: string;
  dir: string;
  current: Generation | null;
  leases: Map<string, number>;
  lastUsedAt: Date;
  /** Monotonic time of the last successful revalidation. */
  checkedAtMs: number | null;
  /** Re-hash every file on the next use (after an unclean shutdown). */
  needsFullVerify: boolean;
  flight: Flight | null;
  removing: Promise<void> | null;
}

interface SyncResult {
  current: Generation;
  report: LayerSyncReport;
  stale: boolean;
}

function emptyReport(outcome: LayerSyncReport["outcome"]): LayerSyncReport {
  return {
    outcome,
    listedFiles: 0,
    downloadedFiles: 0,
    downloadedBytes: 0,
    repairedFiles: 0,
    removedFiles: 0,
    restarts: 0,
  };
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError";
}

function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Unknown (non-Orchestrator) storage errors are treated as transient I/O failures. */
function isRetryable(error: unknown): boolean {
  return OrchestratorError.isInstance(error) ? error.retryable : !isAbort(error);
}

/** Storage answers that are facts, not outages: never papered over with a stale copy. */
function isDefinitive(error: unknown): boolean {
  return (
    OrchestratorError.hasCode(error, "NOT_FOUND") ||
    OrchestratorError.hasCode(error, "VALIDATION_FAILED") ||
    OrchestratorError.hasCode(error, "TEMPLATE_INVALID")
  );
}

function localError(error: unknown, layer: string): unknown {
  if (OrchestratorError.isInstance(error) || isAbort(error)) return error;
  const code = errnoCode(error);
  const what =
    code === "ENOSPC" || code === "EDQUOT"
      ? "no space left in the cache folder"
      : `cache folder error: ${message(error)}`;
  return new OrchestratorError("INTERNAL", `cannot cache layer '${layer}': ${what}`, {
    cause: error,
    details: { layer, ...(code ? { code } : {}) },
  });
}

/** `<algorithm>:<hex>` of a local file. */
async function hashFile(path: string, algorithm: string): Promise<string> {
  const hash = createHash(algorithm);
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.allocUnsafe(HASH_CHUNK_BYTES);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return `${algorithm}:${hash.digest("hex")}`;
}

function manifestEntry(
  file: StoredFile,
  digest: string,
  mode: number,
  stats: BigIntStats,
): ManifestFile {
  return {
    etag: file.etag,
    size: file.size,
    digest,
    mode,
    mtimeNs: stats.mtimeNs.toString(),
    ino: stats.ino.toString(),
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === "EPERM";
  }
}

export class TemplateCache implements Plugin {
  private readonly storage: TemplateStorage;
  private readonly root: string;
  private readonly maxBytes: number;
  private readonly concurrency: number;
  private readonly verify: "stat" | "full";
  private readonly revalidateAfterMs: number;
  private readonly retry: { attempts: number; baseDelayMs: number; maxDelayMs: number };
  private readonly syncAttempts: number;
  private readonly maxLayerFiles: number;
  private readonly onWarning: (warning: TemplateCacheWarning) => void;
  private readonly clock: Clock;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly random: () => number;
  private readonly capabilities: TemplateStorageCapabilities;
  private readonly entries = new Map<string, LayerEntry>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly lockToken = randomUUID();
  private initializing: Promise<void> | null = null;
  private ready = false;
  private destroyed = false;
  private uncleanShutdown = false;
  private evicting: Promise<void> | null = null;
  private evictAgain = false;
  private overBudgetWarned = false;

  constructor(options: TemplateCacheOptions) {
    const issues: ValidationIssue[] = [];
    if (!options?.storage) issues.push({ path: "storage", message: "is required" });
    if (typeof options?.dir !== "string" || options.dir === "") {
      issues.push({ path: "dir", message: "must be a folder path" });
    }
    const positive = (value: number | undefined, path: string, integer = true) => {
      if (value === undefined) return;
      if (!(integer ? Number.isSafeInteger(value) : Number.isFinite(value)) || value < 0) {
        issues.push({ path, message: "must be a non-negative number" });
      }
    };
    positive(options?.maxBytes, "maxBytes");
    positive(options?.concurrency, "concurrency");
    positive(options?.revalidateAfterMs, "revalidateAfterMs", false);
    positive(options?.retry?.attempts, "retry.attempts");
    positive(options?.syncAttempts, "syncAttempts");
    positive(options?.maxLayerFiles, "maxLayerFiles");
    if (issues.length) throw new ValidationError(issues);
    this.storage = options.storage;
    this.root = resolve(options.dir);
    this.maxBytes = options.maxBytes ?? 10 * 1024 ** 3;
    this.concurrency = Math.max(1, options.concurrency ?? 8);
    this.verify = options.verify ?? "stat";
    this.revalidateAfterMs = options.revalidateAfterMs ?? 0;
    this.retry = {
      attempts: Math.max(1, options.retry?.attempts ?? 4),
      baseDelayMs: options.retry?.baseDelayMs ?? 250,
      maxDelayMs: options.retry?.maxDelayMs ?? 5000,
    };
    this.syncAttempts = Math.max(1, options.syncAttempts ?? 3);
    this.maxLayerFiles = options.maxLayerFiles ?? 200_000;
    this.onWarning = options.onWarning ?? (() => {});
    this.clock = options.clock ?? systemClock;
    this.sleep = options.sleep ?? sleep;
    this.random = options.random ?? Math.random;
    this.capabilities = templateStorageCapabilities(this.storage);
  }

  /**
   * Opens the cache folder: takes its lock, removes unfinished syncs and any
   * generation no manifest points at, and loads the cached layers. Runs once
   * (called by the first `acquire` too); retried after a failure.
   */
  init(): Promise<void> {
    if (this.destroyed) return Promise.reject(new PluginStateError("template cache was destroyed"));
    if (this.ready) return Promise.resolve();
    this.initializing ??= this.open().then(
      () => {
        this.ready = true;
        this.initializing = null;
      },
      (error) => {
        this.initializing = null;
        throw error;
      },
    );
    return this.initializing;
  }

  /** Stops syncs in progress, waits for background cleanup, and releases the folder lock. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.initializing?.catch(() => {});
    const flights = [...this.entries.values()].flatMap((entry) =>
      entry.flight ? [entry.flight] : [],
    );
    for (const flight of flights)
      flight.controller.abort(new PluginStateError("template cache was destroyed"));
    await Promise.allSettled(flights.map((flight) => flight.done));
    await this.idle();
    if (this.ready) {
      const lockPath = join(this.root, "lock");
      const lock = await readFile(lockPath, "utf8").catch(() => "");
      if (lock.includes(this.lockToken)) await rm(lockPath, { force: true });
    }
  }

  /**
   * A verified local copy of `layer`, leased until `release()`. Revalidates
   * against the storage first (one listing), downloading only what changed;
   * concurrent calls for one layer share one sync. When the storage fails and
   * a good copy is cached, that copy is returned with `stale: true` (and a
   * warning); when nothing is cached, a retryable UNAVAILABLE error follows
   * bounded retries.
   */
  async acquire(layer: string, options: { signal?: AbortSignal } = {}): Promise<CachedLayer> {
    assertLayerName(layer);
    options.signal?.throwIfAborted();
    await this.init();
    if (this.destroyed) throw new PluginStateError("template cache was destroyed");
    const entry = this.entry(layer);
    if (
      entry.current &&
      !entry.flight &&
      !entry.needsFullVerify &&
      this.revalidateAfterMs > 0 &&
      entry.checkedAtMs !== null &&
      this.clock.monotonicMs() - entry.checkedAtMs < this.revalidateAfterMs
    ) {
      return this.lease(entry, entry.current, emptyReport("fresh"), false);
    }
    const flight = entry.flight ?? this.startFlight(entry);
    return this.join(flight, options.signal);
  }

  /** Leases several layers (in parallel); on any failure the others are released. */
  async acquireAll(
    layers: readonly string[],
    options: { signal?: AbortSignal } = {},
  ): Promise<CachedLayer[]> {
    const results = await Promise.allSettled(layers.map((layer) => this.acquire(layer, options)));
    const failed = results.find((result) => result.status === "rejected");
    if (failed) {
      for (const result of results) if (result.status === "fulfilled") result.value.release();
      throw (failed as PromiseRejectedResult).reason;
    }
    return results.map((result) => (result as PromiseFulfilledResult<CachedLayer>).value);
  }

  /** The cached layers, least recently used first. */
  status(): CachedLayerStatus[] {
    return [...this.entries.values()]
      .filter((entry) => entry.current !== null)
      .sort((a, b) => a.lastUsedAt.getTime() - b.lastUsedAt.getTime())
      .map((entry) => ({
        layer: entry.layer,
        generation: entry.current!.generation,
        files: entry.current!.files.size,
        bytes: entry.current!.manifest.bytes,
        lastUsedAt: entry.lastUsedAt,
        leases: this.leaseCount(entry),
        syncing: entry.flight !== null,
      }));
  }

  /** Bytes of all current generations (what eviction keeps below `maxBytes`). */
  totalBytes(): number {
    let total = 0;
    for (const entry of this.entries.values()) total += entry.current?.manifest.bytes ?? 0;
    return total;
  }

  /** Resolves when background work (old generations deleted, eviction) has finished. */
  async idle(): Promise<void> {
    while (this.background.size > 0 || this.evicting) {
      await Promise.allSettled([...this.background, this.evicting]);
    }
  }

  // ---------------------------------------------------------------- opening

  private async open(): Promise<void> {
    const layersDir = join(this.root, "layers");
    const stagingDir = join(this.root, "staging");
    try {
      await mkdir(layersDir, { recursive: true });
      await mkdir(stagingDir, { recursive: true });
      await this.takeLock();
      // Anything in staging is a sync that never committed (we crashed).
      for (const name of await readdir(stagingDir)) {
        await rm(join(stagingDir, name), { recursive: true, force: true });
      }
      for (const folder of await readdir(layersDir)) {
        await this.recoverLayer(folder);
      }
    } catch (error) {
      throw localError(error, "(cache)");
    }
    await this.evict();
  }

  /**
   * The lock keeps two processes from sharing the folder. A lock left by a
   * process that is gone means it stopped uncleanly: files it wrote may not
   * have reached the disk, so every layer is re-hashed on its next use.
   */
  private async takeLock(): Promise<void> {
    const path = join(this.root, "lock");
    const content = JSON.stringify({ pid: process.pid, host: hostname(), token: this.lockToken });
    try {
      await writeFile(path, content, { flag: "wx" });
      return;
    } catch (error) {
      if (errnoCode(error) !== "EEXIST") throw error;
    }
    let holder: { pid?: unknown; host?: unknown } = {};
    try {
      holder = JSON.parse(await readFile(path, "utf8"));
    } catch {
      // unreadable: a crash while writing it
    }
    const pid = typeof holder.pid === "number" ? holder.pid : null;
    // The same pid is an earlier instance in this process that was never
    // destroyed (an in-process restart): treat it like a crash.
    if (pid !== null && pid !== process.pid && holder.host === hostname() && processAlive(pid)) {
      throw new ConflictError(`cache folder ${this.root} is in use by process ${pid}`, {
        details: { dir: this.root, pid },
      });
    }
    this.uncleanShutdown = true;
    await writeFile(path, content);
  }

  private async recoverLayer(folder: string): Promise<void> {
    const dir = join(this.root, "layers", folder);
    const layer = decodeLayer(folder);
    const manifest = layer === null ? null : await readManifest(dir, layer);
    const generationStats = manifest
      ? await lstat(join(dir, manifest.generation)).catch(() => null)
      : null;
    if (layer === null || manifest === null || !generationStats?.isDirectory()) {
      await rm(dir, { recursive: true, force: true });
      return;
    }
    // Older generations (a crash before their cleanup) and manifest temp files go.
    for (const child of await readdir(dir)) {
      if (child !== MANIFEST_FILE && child !== manifest.generation) {
        await rm(join(dir, child), { recursive: true, force: true });
      }
    }
    const manifestStats = await stat(join(dir, MANIFEST_FILE));
    this.entries.set(layer, {
      ...this.newEntry(layer),
      current: {
        generation: manifest.generation,
        manifest,
        files: new Map(Object.entries(manifest.files)),
      },
      lastUsedAt: manifestStats.mtime,
      needsFullVerify: this.uncleanShutdown,
    });
  }

  private newEntry(layer: string): LayerEntry {
    return {
      layer,
      dir: join(this.root, "layers", encodeLayer(layer)),
      current: null,
      leases: new Map(),
      lastUsedAt: this.clock.now(),
      checkedAtMs: null,
      needsFullVerify: false,
      flight: null,
      removing: null,
    };
  }

  private entry(layer: string): LayerEntry {
    let entry = this.entries.get(layer);
    if (!entry) {
      entry = this.newEntry(layer);
      this.entries.set(layer, entry);
    }
    return entry;
  }

  // ---------------------------------------------------------------- leases

  private leaseCount(entry: LayerEntry): number {
    let count = 0;
    for (const n of entry.leases.values()) count += n;
    return count;
  }

  private lease(
    entry: LayerEntry,
    current: Generation,
    report: LayerSyncReport,
    stale: boolean,
  ): CachedLayer {
    const { generation } = current;
    entry.leases.set(generation, (entry.leases.get(generation) ?? 0) + 1);
    const now = this.clock.now();
    entry.lastUsedAt = now;
    // Persist the time of last use (LRU order survives a restart); best effort.
    this.track(utimes(join(entry.dir, MANIFEST_FILE), now, now).catch(() => {}));
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const left = (entry.leases.get(generation) ?? 1) - 1;
      if (left > 0) {
        entry.leases.set(generation, left);
        return;
      }
      entry.leases.delete(generation);
      if (entry.current?.generation !== generation) this.removeGeneration(entry, generation);
      this.scheduleEviction();
    };
    return {
      layer: entry.layer,
      dir: join(entry.dir, generation),
      generation,
      files: current.files.size,
      bytes: current.manifest.bytes,
      stale,
      report,
      release,
      [Symbol.asyncDispose]: async () => release(),
    };
  }

  private track(promise: Promise<unknown>): void {
    this.background.add(promise);
    void promise.finally(() => this.background.delete(promise));
  }

  private removeGeneration(entry: LayerEntry, generation: string): void {
    this.track(
      rm(join(entry.dir, generation), { recursive: true, force: true }).catch((error) =>
        this.warn({
          code: "CLEANUP_FAILED",
          layer: entry.layer,
          message: `could not delete old generation ${generation} of layer '${entry.layer}': ${message(error)}`,
          cause: error,
        }),
      ),
    );
  }

  private warn(warning: TemplateCacheWarning): void {
    try {
      this.onWarning(warning);
    } catch {
      // a failing warning handler must not break a prepare
    }
  }

  // ---------------------------------------------------------------- single flight

  private startFlight(entry: LayerEntry): Flight {
    let finish!: () => void;
    const flight: Flight = {
      waiters: new Set(),
      controller: new AbortController(),
      done: new Promise((resolve) => {
        finish = resolve;
      }),
    };
    entry.flight = flight;
    void (async () => {
      let result: SyncResult | null = null;
      let failure: unknown = null;
      try {
        if (entry.removing) await entry.removing;
        result = await this.sync(entry, flight.controller.signal);
      } catch (error) {
        failure = error;
      }
      entry.flight = null;
      // Leases are handed out synchronously here, before anything else can
      // retire or evict the generation.
      for (const waiter of flight.waiters) {
        waiter.detach();
        if (result) waiter.resolve(this.lease(entry, result.current, result.report, result.stale));
        else waiter.reject(failure);
      }
      flight.waiters.clear();
      finish();
      this.scheduleEviction();
    })();
    return flight;
  }

  private join(flight: Flight, signal?: AbortSignal): Promise<CachedLayer> {
    return new Promise<CachedLayer>((resolve, reject) => {
      const onAbort = () => {
        flight.waiters.delete(waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        resolve,
        reject,
        detach: () => signal?.removeEventListener("abort", onAbort),
      };
      // A caller that gives up stops waiting; the sync itself goes on (its
      // result warms the cache for the next prepare) unless the cache is destroyed.
      signal?.addEventListener("abort", onAbort, { once: true });
      flight.waiters.add(waiter);
    });
  }

  // ---------------------------------------------------------------- sync

  private async sync(entry: LayerEntry, signal: AbortSignal): Promise<SyncResult> {
    const report = emptyReport("hit");
    for (let attempt = 0; ; attempt++) {
      let listing: StoredFile[];
      try {
        listing = await this.list(entry, signal);
      } catch (error) {
        return this.storageFailed(entry, error, report, signal);
      }
      try {
        return await this.syncFrom(entry, listing, report, signal);
      } catch (error) {
        if (error instanceof SyncRestart) {
          if (attempt + 1 < this.syncAttempts) {
            report.restarts += 1;
            continue;
          }
          return this.storageFailed(
            entry,
            new StorageFailure(
              new UnavailableError(
                `layer '${entry.layer}' kept changing or failing verification during ${this.syncAttempts} syncs: ${error.message}`,
                { details: { layer: entry.layer } },
              ),
            ),
            report,
            signal,
          );
        }
        if (error instanceof StorageFailure)
          return this.storageFailed(entry, error, report, signal);
        throw error;
      }
    }
  }

  /** Lists the layer; a cold layer retries with backoff, a cached one fails fast (it has a fallback). */
  private async list(entry: LayerEntry, signal: AbortSignal): Promise<StoredFile[]> {
    const attempts = entry.current ? 1 : this.retry.attempts;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.storage.listLayer(entry.layer, { signal });
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        if (isAbort(error)) throw error;
        if (!isRetryable(error) || attempt + 1 >= attempts) throw new StorageFailure(error);
        await this.sleep(backoffDelay(attempt, this.retry, this.random), signal);
      }
    }
  }

  private async storageFailed(
    entry: LayerEntry,
    failure: unknown,
    report: LayerSyncReport,
    signal: AbortSignal,
  ): Promise<SyncResult> {
    if (!(failure instanceof StorageFailure)) throw failure;
    const error = failure.error;
    if (signal.aborted) throw signal.reason;
    if (isAbort(error) || isDefinitive(error)) throw error;
    const current = entry.current;
    if (!current) {
      if (!isRetryable(error)) throw error;
      throw new UnavailableError(
        `layer '${entry.layer}' is not cached and the template storage is unavailable: ${message(error)}`,
        { cause: error, details: { layer: entry.layer } },
      );
    }
    const damaged = await this.damagedFiles(entry, current, [...current.files.keys()], "stat");
    if (damaged.size > 0) {
      throw new UnavailableError(
        `layer '${entry.layer}': the template storage is unavailable and ${damaged.size} cached file(s) are damaged`,
        { cause: error, details: { layer: entry.layer, damaged: [...damaged].slice(0, 20) } },
      );
    }
    this.warn({
      code: "STALE",
      layer: entry.layer,
      message: `template storage unavailable (${message(error)}); using the copy of layer '${entry.layer}' cached at ${current.manifest.syncedAt}`,
      cause: error,
    });
    return { current, report: { ...report, outcome: "stale" }, stale: true };
  }

  /** Refuses listings that could not be laid out safely as a folder (before anything is written). */
  private checkListing(layer: string, listing: StoredFile[]): void {
    const issues: ValidationIssue[] = [];
    const paths = new Set<string>();
    const folders = new Set<string>();
    for (const file of listing) {
      const problem = objectKeyProblem(file.path);
      if (problem) issues.push({ path: String(file.path), message: problem });
      else if (paths.has(file.path)) issues.push({ path: file.path, message: "is listed twice" });
      if (!Number.isSafeInteger(file.size) || file.size < 0) {
        issues.push({ path: String(file.path), message: "has an invalid size" });
      }
      if (typeof file.etag !== "string" || file.etag === "") {
        issues.push({ path: String(file.path), message: "has no etag" });
      }
      paths.add(file.path);
      const segments = String(file.path).split("/");
      for (let i = 1; i < segments.length; i++) folders.add(segments.slice(0, i).join("/"));
    }
    for (const path of paths) {
      if (folders.has(path)) issues.push({ path, message: "is both a file and a folder" });
    }
    if (listing.length > this.maxLayerFiles) {
      issues.push({ path: "(layer)", message: `has more than ${this.maxLayerFiles} files` });
    }
    if (issues.length) {
      throw new StorageFailure(
        new TemplateInvalidError(
          `layer '${layer}' cannot be cached: ${issues
            .slice(0, 5)
            .map((issue) => `${JSON.stringify(issue.path)} ${issue.message}`)
            .join("; ")}`,
          { details: { layer, issues: issues.slice(0, 50) } },
        ),
      );
    }
  }

  /** Paths whose local copy no longer matches the manifest. */
  private async damagedFiles(
    entry: LayerEntry,
    current: Generation,
    paths: string[],
    mode: "stat" | "full",
  ): Promise<Set<string>> {
    const damaged = new Set<string>();
    const base = join(entry.dir, current.generation);
    await mapLimit(paths, LOCAL_CONCURRENCY, async (path) => {
      const recorded = current.files.get(path);
      const absolute = join(base, path);
      try {
        const stats = await lstat(absolute, { bigint: true });
        const intact =
          recorded !== undefined &&
          stats.isFile() &&
          Number(stats.size) === recorded.size &&
          (mode === "full"
            ? (await hashFile(absolute, recorded.digest.split(":")[0]!)) === recorded.digest
            : stats.mtimeNs.toString() === recorded.mtimeNs &&
              stats.ino.toString() === recorded.ino);
        if (!intact) damaged.add(path);
      } catch {
        damaged.add(path);
      }
    });
    return damaged;
  }

  private async syncFrom(
    entry: LayerEntry,
    listing: StoredFile[],
    report: LayerSyncReport,
    signal: AbortSignal,
  ): Promise<SyncResult> {
    this.checkListing(entry.layer, listing);
    report.listedFiles = listing.length;
    const previous = entry.current;
    const unchanged = listing.filter((file) => {
      const cached = previous?.files.get(file.path);
      return cached !== undefined && cached.etag === file.etag && cached.size === file.size;
    });
    const verifyMode = entry.needsFullVerify ? "full" : this.verify;
    const damaged = previous
      ? await this.damagedFiles(
          entry,
          previous,
          unchanged.map((file) => file.path),
          verifyMode,
        )
      : new Set<string>();
    const reuse = unchanged.filter((file) => !damaged.has(file.path));
    const reused = new Set(reuse.map((file) => file.path));
    const download = listing.filter((file) => !reused.has(file.path));
    const listed = new Set(listing.map((file) => file.path));
    const removed = previous ? [...previous.files.keys()].filter((path) => !listed.has(path)) : [];
    report.repairedFiles = damaged.size;

    if (previous && download.length === 0 && removed.length === 0) {
      entry.checkedAtMs = this.clock.monotonicMs();
      entry.needsFullVerify = false;
      return { current: previous, report: { ...report, outcome: "hit" }, stale: false };
    }

    const generation = newGeneration(this.clock.now());
    const staging = join(this.root, "staging", `${encodeLayer(entry.layer)}-${randomUUID()}`);
    const target = join(entry.dir, generation);
    let moved = false;
    const files = new Map<string, ManifestFile>();
    try {
      const folders = new Set<string>();
      for (const file of listing) {
        const cut = file.path.lastIndexOf("/");
        if (cut > 0) folders.add(file.path.slice(0, cut));
      }
      await mkdir(staging, { recursive: true });
      // `mkdir -p` in parallel: concurrent creation of a shared parent is fine.
      await mapLimit([...folders], LOCAL_CONCURRENCY, (folder) =>
        mkdir(join(staging, folder), { recursive: true }),
      );
      const source = previous ? join(entry.dir, previous.generation) : "";
      await mapLimit(reuse, LOCAL_CONCURRENCY, async (file) => {
        const recorded = previous!.files.get(file.path)!;
        const to = join(staging, file.path);
        try {
          // Same inode, same bytes, O(1): committed generations are immutable.
          await link(join(source, file.path), to);
          files.set(file.path, recorded);
        } catch (error) {
          if (
            !["EXDEV", "EPERM", "EMLINK", "ENOTSUP", "EOPNOTSUPP"].includes(errnoCode(error) ?? "")
          ) {
            throw error;
          }
          await copyFile(join(source, file.path), to);
          const stats = await lstat(to, { bigint: true });
          files.set(file.path, {
            ...recorded,
            mtimeNs: stats.mtimeNs.toString(),
            ino: stats.ino.toString(),
          });
        }
      });
      await mapLimit(download, this.concurrency, async (file) => {
        files.set(
          file.path,
          await this.download(entry.layer, file, join(staging, file.path), signal),
        );
        report.downloadedFiles += 1;
        report.downloadedBytes += file.size;
      });
      signal.throwIfAborted();
      const sorted = [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const manifest: LayerManifest = {
        format: 1,
        layer: entry.layer,
        generation,
        syncedAt: this.clock.now().toISOString(),
        bytes: sorted.reduce((sum, [, file]) => sum + file.size, 0),
        files: Object.fromEntries(sorted),
      };
      await mkdir(entry.dir, { recursive: true });
      await rename(staging, target);
      moved = true;
      await writeManifest(entry.dir, manifest); // the commit point
      entry.current = { generation, manifest, files };
    } catch (error) {
      await rm(staging, { recursive: true, force: true }).catch(() => {});
      if (moved) await rm(target, { recursive: true, force: true }).catch(() => {});
      if (error instanceof StorageFailure || error instanceof SyncRestart) throw error;
      throw localError(error, entry.layer);
    }
    entry.checkedAtMs = this.clock.monotonicMs();
    entry.needsFullVerify = false;
    if (previous && !entry.leases.has(previous.generation)) {
      this.removeGeneration(entry, previous.generation);
    }
    report.removedFiles = removed.length;
    return {
      current: entry.current,
      report: { ...report, outcome: previous ? "updated" : "created" },
      stale: false,
    };
  }

  /**
   * Downloads one file into `target`, pinned to the listed etag, resuming
   * (ranged storages) or restarting after transient failures, then checks
   * its size and the digest the storage vouches for. One hash per byte: the
   * vouched algorithm when there is one (S3's MD5 ETag), else sha256; the
   * manifest keeps it for later full verification.
   */
  private async download(
    layer: string,
    file: StoredFile,
    target: string,
    signal: AbortSignal,
  ): Promise<ManifestFile> {
    let handle: FileHandle | null = null;
    try {
      let written = 0;
      let hash: Hash | null = null;
      let algorithm: "sha256" | "md5" = "sha256";
      let vouched: string | undefined;
      let mode = 0o644;
      for (let attempt = 0; ; attempt++) {
        const resume = this.capabilities.rangedReads && written > 0;
        if (!resume && written > 0) {
          await handle?.truncate(0);
          written = 0;
        }
        const failed = async (error: unknown): Promise<void> => {
          if (signal.aborted) throw signal.reason;
          if (isAbort(error)) throw error;
          // Gone or changed since the listing: the listing is stale, start over.
          if (
            OrchestratorError.hasCode(error, "CONFLICT") ||
            OrchestratorError.hasCode(error, "NOT_FOUND")
          ) {
            throw new SyncRestart(`${file.path}: ${message(error)}`);
          }
          if (!isRetryable(error) || attempt + 1 >= this.retry.attempts) {
            throw new StorageFailure(error);
          }
          await this.sleep(backoffDelay(attempt, this.retry, this.random), signal);
        };
        let result: ReadResult;
        try {
          result = await this.storage.readFile(layer, file.path, {
            signal,
            ifMatch: file.etag,
            ...(resume ? { offset: written } : {}),
          });
        } catch (error) {
          await failed(error);
          continue;
        }
        if (result.notModified) {
          throw new StorageFailure(
            new OrchestratorError(
              "INTERNAL",
              `storage answered 'not modified' to a plain read of ${file.path}`,
            ),
          );
        }
        // A storage that ignores If-Match still tells us what it sends.
        if (result.file.etag !== file.etag || result.file.size !== file.size) {
          await result.body[Symbol.asyncIterator]().return?.();
          throw new SyncRestart(`${file.path} changed since it was listed`);
        }
        if (written === 0) {
          vouched = result.file.digest;
          algorithm = vouched?.startsWith("md5:") ? "md5" : "sha256";
          hash = createHash(algorithm);
        }
        // Owner-readable so the cache can re-hash it; setuid/setgid/sticky dropped.
        mode = (result.file.mode & 0o777) | 0o400;
        handle ??= await open(target, "wx", mode);
        const iterator = result.body[Symbol.asyncIterator]();
        let finished = false;
        let streamError: unknown = null;
        try {
          for (;;) {
            let next: IteratorResult<Uint8Array>;
            try {
              next = await iterator.next();
            } catch (error) {
              streamError = error;
              break;
            }
            if (next.done) {
              finished = true;
              break;
            }
            const chunk = next.value;
            if (written + chunk.length > file.size) {
              throw new SyncRestart(`${file.path} is longer than listed`);
            }
            hash?.update(chunk);
            await handle.write(chunk, 0, chunk.length, written);
            written += chunk.length;
          }
        } finally {
          if (!finished && streamError === null) {
            await Promise.resolve(iterator.return?.()).catch(() => {});
          }
        }
        if (streamError !== null) {
          await failed(streamError);
          continue;
        }
        break;
      }
      if (written !== file.size) throw new SyncRestart(`${file.path} is shorter than listed`);
      const digest = `${algorithm}:${hash?.digest("hex")}`;
      if (vouched?.startsWith(`${algorithm}:`) && vouched !== digest) {
        throw new SyncRestart(`${file.path} does not match its ${algorithm} digest`);
      }
      handle ??= await open(target, "wx", mode);
      let stats = await handle.stat({ bigint: true });
      // The umask may have narrowed the mode given to open().
      if ((Number(stats.mode) & 0o777) !== mode) {
        await handle.chmod(mode);
        stats = await handle.stat({ bigint: true });
      }
      return manifestEntry(file, digest, mode, stats);
    } finally {
      await handle?.close();
    }
  }

  // ---------------------------------------------------------------- eviction

  private scheduleEviction(): void {
    if (this.evicting) {
      this.evictAgain = true;
      return;
    }
    this.evicting = this.evict()
      .catch((error) =>
        this.warn({
          code: "CLEANUP_FAILED",
          message: `eviction failed: ${message(error)}`,
          cause: error,
        }),
      )
      .finally(() => {
        this.evicting = null;
        if (this.evictAgain) {
          this.evictAgain = false;
          this.scheduleEviction();
        }
      });
  }

  /** Evicts least recently used layers nobody uses until the cache fits `maxBytes`. */
  private async evict(): Promise<void> {
    let total = this.totalBytes();
    if (total <= this.maxBytes) {
      this.overBudgetWarned = false;
      return;
    }
    const candidates = [...this.entries.values()]
      .filter((entry) => entry.current !== null)
      .sort((a, b) => a.lastUsedAt.getTime() - b.lastUsedAt.getTime());
    for (const entry of candidates) {
      if (total <= this.maxBytes) break;
      const current = entry.current;
      // Checked right before removing: a lease or a sync may have started meanwhile.
      if (!current || entry.flight || entry.removing || this.leaseCount(entry) > 0) continue;
      total -= current.manifest.bytes;
      entry.current = null;
      entry.checkedAtMs = null;
      entry.removing = (async () => {
        await unlink(join(entry.dir, MANIFEST_FILE)).catch((error) => {
          if (errnoCode(error) !== "ENOENT") throw error;
        });
        await rm(join(entry.dir, current.generation), { recursive: true, force: true });
        // The folder itself goes too when nothing else is in it (a sync may have started).
        await rmdir(entry.dir).catch(() => {});
      })()
        .catch((error) =>
          this.warn({
            code: "CLEANUP_FAILED",
            layer: entry.layer,
            message: `could not evict layer '${entry.layer}': ${message(error)}`,
            cause: error,
          }),
        )
        .finally(() => {
          entry.removing = null;
        });
      await entry.removing;
    }
    if (total > this.maxBytes && !this.overBudgetWarned) {
      this.overBudgetWarned = true;
      this.warn({
        code: "OVER_BUDGET",
        message: `template cache holds ${total} bytes, above its ${this.maxBytes}-byte budget: the remaining layers are in use`,
      });
    } else if (total <= this.maxBytes) {
      this.overBudgetWarned = false;
    }
  }
}
