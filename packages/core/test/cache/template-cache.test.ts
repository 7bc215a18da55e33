import { execFileSync, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type CachedLayer,
  TemplateCache,
  type TemplateCacheWarning,
} from "../../src/cache/index.js";
import { OrchestratorError, UnavailableError } from "../../src/errors/orchestrator-error.js";
import type {
  ReadOptions,
  ReadResult,
  StoredFile,
  TemplateStorage,
} from "../../src/ports/template-storage.js";
import { FakeClock } from "../../src/testing/index.js";
import { MemoryTemplateStorage } from "./memory-template-storage.js";

let dir: string;
let storage: MemoryTemplateStorage;
let warnings: TemplateCacheWarning[];
let clock: FakeClock;
const caches: TemplateCache[] = [];

function newCache(overrides: Partial<ConstructorParameters<typeof TemplateCache>[0]> = {}) {
  const cache = new TemplateCache({
    storage,
    dir,
    clock,
    sleep: async () => {},
    onWarning: (warning) => warnings.push(warning),
    ...overrides,
  });
  caches.push(cache);
  return cache;
}

function seed(layer: string, files: Record<string, string>, mode = 0o644) {
  for (const [path, content] of Object.entries(files)) storage.put(layer, path, content, mode);
}

async function contents(lease: CachedLayer): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  const walk = async (folder: string, prefix: string) => {
    for (const entry of await readdir(folder, { withFileTypes: true })) {
      const path = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(join(folder, entry.name), path);
      else result[path] = await readFile(join(folder, entry.name), "utf8");
    }
  };
  await walk(lease.dir, "");
  return result;
}

async function codeOf(promise: Promise<unknown>): Promise<string | null> {
  try {
    await promise;
    return null;
  } catch (error) {
    return OrchestratorError.isInstance(error) ? error.code : `raw ${String(error)}`;
  }
}

/** Waits (event-loop turns, no timers) until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  for (let turns = 0; !condition(); turns++) {
    if (turns > 10_000) throw new Error("condition never became true");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", ""]);
  return child.pid ?? 999_999;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "orch-cache-"));
  storage = new MemoryTemplateStorage();
  warnings = [];
  clock = new FakeClock();
});

afterEach(async () => {
  for (const cache of caches.splice(0)) await cache.destroy();
  await rm(dir, { recursive: true, force: true });
});

describe("TemplateCache: syncing", () => {
  it("downloads a cold layer completely, with modes, then serves warm hits with zero downloads", async () => {
    seed("base/app", { "server.js": "console.log(1)", "lib/util.js": "u", "empty.txt": "" });
    storage.put("base/app", "bin/start.sh", "#!/bin/sh\n", 0o755);
    const cache = newCache();

    const cold = await cache.acquire("base/app");
    expect(cold.report).toMatchObject({
      outcome: "created",
      listedFiles: 4,
      downloadedFiles: 4,
      downloadedBytes: 14 + 1 + 0 + 10,
    });
    expect(cold.stale).toBe(false);
    expect(await contents(cold)).toEqual({
      "server.js": "console.log(1)",
      "lib/util.js": "u",
      "empty.txt": "",
      "bin/start.sh": "#!/bin/sh\n",
    });
    expect((await stat(join(cold.dir, "bin/start.sh"))).mode & 0o777).toBe(0o755);
    expect((await stat(join(cold.dir, "server.js"))).mode & 0o777).toBe(0o644);
    cold.release();

    const reads = storage.calls.read;
    const warm = await cache.acquire("base/app");
    expect(warm.report).toMatchObject({ outcome: "hit", downloadedFiles: 0, downloadedBytes: 0 });
    expect(storage.calls.read).toBe(reads);
    expect(storage.calls.list).toBe(2);
    expect(warm.generation).toBe(cold.generation);
    warm.release();
  });

  it("downloads exactly the one changed object, and swaps generations without disturbing readers", async () => {
    seed("l", Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f${i}.txt`, `v1-${i}`])));
    const cache = newCache();
    const first = await cache.acquire("l");
    const bytesBefore = storage.bytesRead;

    storage.put("l", "f7.txt", "v2-seven");
    storage.put("l", "new/added.txt", "added");
    storage.remove("l", "f9.txt");
    const second = await cache.acquire("l");
    expect(second.report).toMatchObject({
      outcome: "updated",
      downloadedFiles: 2,
      downloadedBytes: 8 + 5,
      removedFiles: 1,
    });
    expect(storage.bytesRead - bytesBefore).toBe(13);
    expect(second.generation).not.toBe(first.generation);
    const now = await contents(second);
    expect(now["f7.txt"]).toBe("v2-seven");
    expect(now["new/added.txt"]).toBe("added");
    expect(now).not.toHaveProperty("f9.txt");
    expect(Object.keys(now)).toHaveLength(50);

    // The first reader still sees its complete, unchanged generation.
    const old = await contents(first);
    expect(old["f7.txt"]).toBe("v1-7");
    expect(old["f9.txt"]).toBe("v1-9");
    first.release();
    await cache.idle();
    await expect(stat(first.dir)).rejects.toMatchObject({ code: "ENOENT" });
    second.release();
  });

  it("runs one sync for concurrent prepares of the same layer", async () => {
    seed("shared", { "a.txt": "a", "b.txt": "b", "c.txt": "c" });
    let releaseList!: () => void;
    const gate = new Promise<void>((resolve) => {
      releaseList = resolve;
    });
    storage.hooks.beforeList = () => gate;
    const cache = newCache();
    await cache.init();
    const pending = Array.from({ length: 6 }, () => cache.acquire("shared"));
    await until(() => storage.calls.list === 1);
    releaseList();
    const leases = await Promise.all(pending);
    expect(storage.calls.list).toBe(1);
    expect(storage.calls.read).toBe(3);
    expect(new Set(leases.map((lease) => lease.generation)).size).toBe(1);
    expect(cache.status()[0]?.leases).toBe(6);
    for (const lease of leases) lease.release();
    expect(cache.status()[0]?.leases).toBe(0);
  });

  it("lets one waiter give up without cancelling the shared sync", async () => {
    seed("l", { "a.txt": "a" });
    let open: (() => void) | null = null;
    storage.hooks.beforeList = () =>
      new Promise<void>((resolve) => {
        open = resolve;
      });
    const cache = newCache();
    await cache.init();
    const controller = new AbortController();
    const impatient = cache.acquire("l", { signal: controller.signal });
    const patient = cache.acquire("l");
    await until(() => open !== null);
    controller.abort();
    await expect(impatient).rejects.toMatchObject({ name: "AbortError" });
    (open as unknown as () => void)();
    const lease = await patient;
    expect(lease.report.outcome).toBe("created");
    expect(cache.status()[0]?.leases).toBe(1);
    lease.release();
  });

  it("skips the round trip within revalidateAfterMs", async () => {
    seed("l", { "a.txt": "a" });
    const cache = newCache({ revalidateAfterMs: 10_000 });
    (await cache.acquire("l")).release();
    const fresh = await cache.acquire("l");
    expect(fresh.report.outcome).toBe("fresh");
    expect(storage.calls.list).toBe(1);
    fresh.release();
    clock.advance(10_000);
    const revalidated = await cache.acquire("l");
    expect(revalidated.report.outcome).toBe("hit");
    expect(storage.calls.list).toBe(2);
    revalidated.release();
  });

  it("resumes an interrupted download from where it stopped (ranged reads)", async () => {
    const big = "x".repeat(5 * 64 * 1024 + 123);
    seed("l", { "big.bin": big });
    let failures = 0;
    storage.hooks.beforeChunk = (_layer, _path, index) => {
      if (index === 2 && failures++ === 0) throw new UnavailableError("connection reset");
    };
    const cache = newCache();
    const lease = await cache.acquire("l");
    expect(failures).toBe(2);
    expect(storage.calls.read).toBe(2);
    expect(storage.bytesRead).toBe(big.length); // nothing fetched twice
    expect((await contents(lease))["big.bin"]).toBe(big);
    lease.release();
  });

  it("restarts an interrupted download from zero when the storage cannot range", async () => {
    const big = "y".repeat(3 * 64 * 1024);
    seed("l", { "big.bin": big });
    let failures = 0;
    storage.hooks.beforeChunk = (_layer, _path, index) => {
      if (index === 1 && failures++ === 0) throw new UnavailableError("connection reset");
    };
    const noRange: TemplateStorage = Object.assign(Object.create(storage), {
      capabilities: { writable: true, rangedReads: false },
    });
    const cache = newCache({ storage: noRange });
    const lease = await cache.acquire("l");
    expect((await contents(lease))["big.bin"]).toBe(big);
    expect(storage.bytesRead).toBe(big.length + 64 * 1024);
    lease.release();
  });

  it("refuses a listing with unsafe or conflicting paths and writes nothing", async () => {
    const lying: TemplateStorage = Object.assign(Object.create(storage), {
      async listLayer(): Promise<StoredFile[]> {
        const at = new Date();
        return [
          { path: "../escape", size: 1, etag: "e1", modifiedAt: at },
          { path: "a", size: 1, etag: "e2", modifiedAt: at },
          { path: "a/b", size: 1, etag: "e3", modifiedAt: at },
        ];
      },
    });
    const cache = newCache({ storage: lying });
    let caught: unknown;
    try {
      await cache.acquire("evil");
    } catch (error) {
      caught = error;
    }
    expect(OrchestratorError.hasCode(caught, "TEMPLATE_INVALID")).toBe(true);
    expect((caught as OrchestratorError).details.issues).toEqual([
      { path: "../escape", message: "must not contain '..'" },
      { path: "a", message: "is both a file and a folder" },
    ]);
    expect(await readdir(join(dir, "staging"))).toEqual([]);
    expect(await readdir(join(dir, "layers"))).toEqual([]);
  });
});

describe("TemplateCache: storage failures", () => {
  it("serves a warm layer when the storage is down, with a STALE warning", async () => {
    seed("l", { "a.txt": "a" });
    const cache = newCache();
    (await cache.acquire("l")).release();
    storage.down = true;
    const lease = await cache.acquire("l");
    expect(lease.stale).toBe(true);
    expect(lease.report.outcome).toBe("stale");
    expect(await contents(lease)).toEqual({ "a.txt": "a" });
    expect(warnings).toEqual([
      expect.objectContaining({ code: "STALE", layer: "l", cause: expect.any(UnavailableError) }),
    ]);
    lease.release();
  });

  it("fails a cold layer with a retryable UNAVAILABLE after bounded retries", async () => {
    seed("l", { "a.txt": "a" });
    storage.down = true;
    const delays: number[] = [];
    const cache = newCache({
      retry: { attempts: 3, baseDelayMs: 100, maxDelayMs: 150 },
      sleep: async (ms) => {
        delays.push(ms);
      },
      random: () => 0.99,
    });
    let caught: unknown;
    try {
      await cache.acquire("l");
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(UnavailableError);
    expect((caught as UnavailableError).retryable).toBe(true);
    expect((caught as UnavailableError).message).toMatch(/layer 'l' is not cached/);
    expect(delays).toEqual([99, 148]); // full jitter below 100·2^n, capped at 150
    expect(await readdir(join(dir, "staging"))).toEqual([]);
  });

  it("does not retry or serve stale copies for definitive answers (NOT_FOUND)", async () => {
    const cache = newCache();
    expect(await codeOf(cache.acquire("never-published"))).toBe("NOT_FOUND");
    expect(storage.calls.list).toBe(1);
  });

  it("falls back to the cached copy when the storage fails in the middle of an update", async () => {
    seed("l", { "a.txt": "a1", "b.txt": "b1" });
    const cache = newCache({ retry: { attempts: 2 } });
    (await cache.acquire("l")).release();
    storage.put("l", "b.txt", "b2");
    storage.hooks.beforeRead = () => {
      throw new UnavailableError("connection refused");
    };
    const lease = await cache.acquire("l");
    expect(lease.stale).toBe(true);
    expect(await contents(lease)).toEqual({ "a.txt": "a1", "b.txt": "b1" });
    expect(await readdir(join(dir, "staging"))).toEqual([]);
    lease.release();
  });

  it("refetches an object replaced between the listing and its download", async () => {
    seed("l", { "a.txt": "old", "b.txt": "b" });
    let replaced = false;
    storage.hooks.beforeRead = (_layer, path) => {
      if (path === "a.txt" && !replaced) {
        replaced = true;
        storage.put("l", "a.txt", "new content");
      }
    };
    const cache = newCache();
    const lease = await cache.acquire("l");
    expect(lease.report.restarts).toBe(1);
    expect(await contents(lease)).toEqual({ "a.txt": "new content", "b.txt": "b" });
    lease.release();
  });

  it("detects a torn download (content replaced mid-stream under the same etag) by its digest", async () => {
    const original = "A".repeat(3 * 64 * 1024);
    seed("l", { "f.bin": original });
    let tear = true;
    // A storage that ignores If-Match and streams whatever is on disk, so a
    // publish in the middle of a download mixes two versions.
    const torn: TemplateStorage = Object.assign(Object.create(storage), {
      async readFile(layer: string, path: string, options: ReadOptions): Promise<ReadResult> {
        const result = await storage.readFile(layer, path, { ...options, ifMatch: undefined });
        if (result.notModified || !tear) return result;
        tear = false;
        const body = result.body;
        async function* mixed() {
          let index = 0;
          for await (const chunk of body) {
            yield index++ === 0 ? chunk : Buffer.alloc(chunk.length, "B");
          }
        }
        return { ...result, body: mixed() };
      },
    });
    const cache = newCache({ storage: torn });
    const lease = await cache.acquire("l");
    expect(lease.report.restarts).toBe(1);
    expect((await contents(lease))["f.bin"]).toBe(original);
    lease.release();
  });

  it("gives up on a layer that keeps changing: UNAVAILABLE cold, stale copy warm", async () => {
    seed("l", { "a.txt": "a" });
    let version = 0;
    storage.hooks.beforeRead = () => {
      storage.put("l", "a.txt", `a${++version}`);
    };
    const cold = newCache({ syncAttempts: 2 });
    expect(await codeOf(cold.acquire("l"))).toBe("UNAVAILABLE");
    expect(version).toBe(2);
  });
});

describe("TemplateCache: local damage and crashes", () => {
  it("detects an edited or truncated cached file and fetches it again", async () => {
    seed("l", { "a.txt": "original a", "b.txt": "original b" });
    const cache = newCache();
    const first = await cache.acquire("l");
    await writeFile(join(first.dir, "a.txt"), "tampered");
    first.release();
    const reads = storage.calls.read;
    const second = await cache.acquire("l");
    expect(second.report).toMatchObject({
      outcome: "updated",
      repairedFiles: 1,
      downloadedFiles: 1,
    });
    expect(storage.calls.read - reads).toBe(1);
    expect(await contents(second)).toEqual({ "a.txt": "original a", "b.txt": "original b" });
    second.release();
  });

  it("re-hashes everything with verify: 'full' (a bit flip that keeps size and mtime)", async () => {
    seed("l", { "a.txt": "original a" });
    const cache = newCache();
    const first = await cache.acquire("l");
    const path = join(first.dir, "a.txt");
    const before = await stat(path, { bigint: true });
    await writeFile(path, "ORIGINAL a");
    // Put the exact mtime back (ns precision): invisible to a stat check.
    const ns = before.mtimeNs;
    execFileSync("touch", [
      "-m",
      "-d",
      `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, "0")}`,
      path,
    ]);
    first.release();
    const statOnly = await cache.acquire("l");
    expect(statOnly.report.outcome).toBe("hit");
    statOnly.release();
    await cache.destroy();

    const full = newCache({ verify: "full" });
    const repaired = await full.acquire("l");
    expect(repaired.report).toMatchObject({ outcome: "updated", repairedFiles: 1 });
    expect(await contents(repaired)).toEqual({ "a.txt": "original a" });
    repaired.release();
  });

  it("recovers from a crash mid-sync: staging removed, index consistent, files re-verified", async () => {
    seed("l", { "a.txt": "a1", "b.txt": "b1", "c.txt": "c1" });
    const crashed = newCache();
    const committed = await crashed.acquire("l");
    committed.release();
    // An update that dies after writing part of its staging folder.
    storage.put("l", "a.txt", "a2");
    storage.put("l", "c.txt", "c2");
    let reached!: () => void;
    const midSync = new Promise<void>((resolve) => {
      reached = resolve;
    });
    storage.hooks.beforeRead = (_layer, path) => {
      if (path !== "c.txt") return;
      reached();
      return new Promise<void>(() => {}); // hangs: the process dies here
    };
    void crashed.acquire("l");
    await midSync;
    expect((await readdir(join(dir, "staging"))).length).toBe(1);
    caches.splice(caches.indexOf(crashed), 1); // never destroyed: the process "died"
    storage.hooks = {};
    // Debris of other crash points: a generation renamed but never committed,
    // a half-written manifest, and a layer whose manifest is garbage.
    const layerDir = join(dir, "layers", "l");
    await mkdir(join(layerDir, "gzzzz-0123abcd"));
    await writeFile(join(layerDir, "current.json.1234.tmp"), "{");
    await mkdir(join(dir, "layers", "broken", "g1-00000000"), { recursive: true });
    await writeFile(join(dir, "layers", "broken", "current.json"), "not json");
    await writeFile(join(dir, "lock"), JSON.stringify({ pid: deadPid(), host: hostname() }));

    const restarted = newCache();
    await restarted.init();
    expect(await readdir(join(dir, "staging"))).toEqual([]);
    expect((await readdir(join(dir, "layers"))).sort()).toEqual(["l"]);
    expect((await readdir(layerDir)).sort()).toEqual(["current.json", committed.generation]);
    expect(restarted.status()).toEqual([
      expect.objectContaining({ layer: "l", generation: committed.generation, files: 3 }),
    ]);
    // Unclean shutdown: the first use re-hashes; then it catches up with storage.
    await writeFile(join(layerDir, committed.generation, "b.txt"), "b?"); // same size, damaged
    const lease = await restarted.acquire("l");
    expect(lease.report).toMatchObject({
      outcome: "updated",
      repairedFiles: 1,
      downloadedFiles: 3,
    });
    expect(await contents(lease)).toEqual({ "a.txt": "a2", "b.txt": "b1", "c.txt": "c2" });
    lease.release();
  });

  it("refuses a cache folder locked by another live process", async () => {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "lock"), JSON.stringify({ pid: process.ppid, host: hostname() }));
    expect(await codeOf(newCache().init())).toBe("CONFLICT");
  });

  it("reports a local disk failure clearly and leaves no staging behind", async () => {
    seed("l", { "a.txt": "a" });
    const cache = newCache();
    await cache.init();
    await writeFile(join(dir, "layers", "l"), "a file where the layer folder goes");
    let caught: unknown;
    try {
      await cache.acquire("l");
    } catch (error) {
      caught = error;
    }
    expect(OrchestratorError.hasCode(caught, "INTERNAL")).toBe(true);
    expect((caught as Error).message).toMatch(/cannot cache layer 'l'/);
    expect(await readdir(join(dir, "staging"))).toEqual([]);
  });

  it("is unusable after destroy and releases its lock", async () => {
    seed("l", { "a.txt": "a" });
    const cache = newCache();
    (await cache.acquire("l")).release();
    await cache.destroy();
    expect(await readdir(dir)).not.toContain("lock");
    expect(await codeOf(cache.acquire("l"))).toBe("PLUGIN_STATE");
  });
});

describe("TemplateCache: eviction", () => {
  it("evicts least recently used layers beyond maxBytes, never one in use", async () => {
    seed("a", { "f.bin": "a".repeat(100) });
    seed("b", { "f.bin": "b".repeat(100) });
    seed("c", { "f.bin": "c".repeat(100) });
    const cache = newCache({ maxBytes: 150 });

    const a = await cache.acquire("a");
    clock.advance(1000);
    const b = await cache.acquire("b");
    await cache.idle();
    // Both in use: over budget, nothing evicted, one warning.
    expect(cache.status().map((s) => s.layer)).toEqual(["a", "b"]);
    expect(warnings.map((w) => w.code)).toEqual(["OVER_BUDGET"]);

    b.release();
    await cache.idle();
    expect(cache.status().map((s) => s.layer)).toEqual(["a"]);
    expect(await readFile(join(a.dir, "f.bin"), "utf8")).toBe("a".repeat(100));

    a.release();
    clock.advance(1000);
    const c = await cache.acquire("c");
    await cache.idle();
    expect(cache.status().map((s) => s.layer)).toEqual(["c"]);
    expect(await readdir(join(dir, "layers"))).toEqual(["c"]);
    await expect(stat(a.dir)).rejects.toMatchObject({ code: "ENOENT" });
    c.release();

    // An evicted layer comes back on demand.
    const again = await cache.acquire("a");
    expect(again.report.outcome).toBe("created");
    again.release();
  });

  it("keeps the LRU order across a restart", async () => {
    seed("old", { f: "1" });
    seed("new", { f: "2" });
    const first = newCache();
    (await first.acquire("old")).release();
    clock.advance(60_000);
    (await first.acquire("new")).release();
    await first.idle();
    await first.destroy();
    const second = newCache();
    await second.init();
    expect(second.status().map((s) => s.layer)).toEqual(["old", "new"]);
  });
});
