/**
 * Template storage benchmarks against a real S3 protocol server (s3rver, or
 * whatever `ORCH_TEST_S3_*` names): `TemplateCache` over `S3TemplateStorage`.
 *
 * The baseline, measured in the same run over the same objects and the same
 * HTTP settings, is what `aws s3 sync <prefix> <dir>` does, written out with
 * the same SDK: list every page, then GET what is missing or differs in size
 * or date (in parallel, straight into place: no staging, no hashing, no
 * verification). Against it:
 *  - cold sync shows the cost of verification (sha256 + digest check) and of
 *    building in a staging folder with an atomic swap;
 *  - warm revalidation must cost only the listing pages (no GET, no bytes);
 *  - a one-file change must cost the listing pages plus one GET, although the
 *    cache builds a new generation (hard links for the unchanged files).
 *
 * Full mode: 10,000 files, ~500 MB (9,900 × ~10 KB + 100 × ~4 MB, random
 * bytes). Quick mode: 300 files, ~3 MB.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  S3Client,
} from "@aws-sdk/client-s3";
import { mapLimit, TemplateCache } from "@orchestrator/core/cache";
import { testServiceEnv } from "@orchestrator/core/testing";
import { S3TemplateStorage, type S3TemplateStorageConfig } from "@orchestrator/storage-s3";
import {
  type BenchContext,
  type BenchModule,
  interleave,
  median,
  type ScenarioResult,
  timeMs,
} from "../../../bench/lib.js";

const SCENARIOS = ["cache.s3.cold", "cache.s3.warm", "cache.s3.one-change"] as const;

/** Parallel downloads, for the cache and for the baseline alike (`aws s3` uses 10). */
const CONCURRENCY = 10;
const LAYER = "bench/big-layer";
const PAGE = 1000;

interface RequestCounter {
  requests: number;
  gets: number;
  lists: number;
  /** Bytes of GET response bodies (file bytes moved). */
  getBytes: number;
}

/** The S3 test service (the bench runner loads `.services.env`). */
function s3Env(): Record<string, string> | null {
  const env = testServiceEnv("s3");
  return env ? { ...env } : null;
}

function counting(client: S3Client): RequestCounter {
  const counter: RequestCounter = { requests: 0, gets: 0, lists: 0, getBytes: 0 };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      counter.requests += 1;
      if (context.commandName === "GetObjectCommand") counter.gets += 1;
      if (context.commandName === "ListObjectsV2Command") counter.lists += 1;
      const result = await next(args);
      if (context.commandName === "GetObjectCommand") {
        const response = result.response as { headers?: Record<string, string> };
        counter.getBytes += Number(response.headers?.["content-length"] ?? 0);
      }
      return result;
    },
    { step: "finalizeRequest", name: `benchCounter${randomUUID()}` },
  );
  return counter;
}

function snapshot(counter: RequestCounter): RequestCounter {
  return { ...counter };
}

function delta(after: RequestCounter, before: RequestCounter): RequestCounter {
  return {
    requests: after.requests - before.requests,
    gets: after.gets - before.gets,
    lists: after.lists - before.lists,
    getBytes: after.getBytes - before.getBytes,
  };
}

/** The layer's files: many small ones and a few big ones, random (incompressible) bytes. */
function layerShape(quick: boolean): { path: string; size: number }[] {
  const small = quick ? 295 : 9_900;
  const big = quick ? 5 : 100;
  const files: { path: string; size: number }[] = [];
  for (let i = 0; i < small; i++) {
    files.push({
      path: `data/d${i % 100}/s${i % 7}/file-${i}.dat`,
      size: 8_192 + ((i * 131) % 4_096),
    });
  }
  for (let i = 0; i < big; i++) {
    files.push({ path: `libs/big-${i}.jar`, size: (quick ? 256 : 4_096) * 1024 + i * 17 });
  }
  return files;
}

/** What `aws s3 sync` does: list, compare size and date, GET differing objects straight into place. */
async function naiveSync(
  client: S3Client,
  bucket: string,
  prefix: string,
  target: string,
): Promise<number> {
  const objects: { key: string; size: number; modified: Date }[] = [];
  let token: string | undefined;
  do {
    const page: ListObjectsV2CommandOutput = await client.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        MaxKeys: PAGE,
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const object of page.Contents ?? []) {
      objects.push({
        key: object.Key!,
        size: object.Size ?? 0,
        modified: object.LastModified ?? new Date(0),
      });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const folders = new Set<string>();
  let fetched = 0;
  await mapLimit(objects, CONCURRENCY, async (object) => {
    const path = join(target, object.key.slice(prefix.length));
    const local = await stat(path).catch(() => null);
    if (local && local.size === object.size && local.mtime >= object.modified) return;
    const folder = dirname(path);
    if (!folders.has(folder)) {
      await mkdir(folder, { recursive: true });
      folders.add(folder);
    }
    const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: object.key }));
    await pipeline(response.Body as Readable, createWriteStream(path));
    fetched += 1;
  });
  return fetched;
}

async function deletePrefix(client: S3Client, bucket: string, prefix: string): Promise<void> {
  for (;;) {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1000 }),
    );
    const keys = (page.Contents ?? []).map((object) => object.Key!);
    if (keys.length === 0) return;
    try {
      await client.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: keys.map((Key) => ({ Key })) },
        }),
      );
    } catch {
      // s3rver fails batch deletes of nested keys (it prunes folders in
      // parallel and trips over itself): delete one by one instead.
      await mapLimit(keys, 4, (Key) =>
        client.send(new DeleteObjectCommand({ Bucket: bucket, Key })),
      );
    }
  }
}

function skipped(reason: string): ScenarioResult[] {
  return SCENARIOS.map((id) => ({
    id,
    name: id,
    unit: "ms",
    better: "lower" as const,
    runs: [],
    baseline: null,
    target: "–",
    met: null,
    skipped: reason,
  }));
}

async function run(
  context: BenchContext,
  selected: (id: string) => boolean,
): Promise<ScenarioResult[]> {
  const env = s3Env();
  if (!env) return skipped("S3 not configured (ORCH_TEST_S3_*; run: npm run services up)");
  const bucket = env.ORCH_TEST_S3_BUCKET!;
  const prefix = `bench-${randomUUID().slice(0, 8)}/`;
  const config: S3TemplateStorageConfig = {
    bucket,
    prefix,
    endpoint: env.ORCH_TEST_S3_ENDPOINT!,
    region: env.ORCH_TEST_S3_REGION!,
    forcePathStyle: true,
    credentials: {
      accessKeyId: env.ORCH_TEST_S3_ACCESS_KEY!,
      secretAccessKey: env.ORCH_TEST_S3_SECRET_KEY!,
    },
    maxConcurrency: 16,
  };
  const storage = new S3TemplateStorage(config);
  const ours = counting(storage.client);
  // The baseline's client: same endpoint, same single-attempt SDK, same sockets.
  const raw = new S3Client({
    region: config.region!,
    endpoint: config.endpoint!,
    forcePathStyle: true,
    credentials: config.credentials!,
    requestChecksumCalculation: "WHEN_REQUIRED",
    maxAttempts: 1,
    requestHandler: { httpAgent: { keepAlive: true, maxSockets: 16 } },
  });
  const theirs = counting(raw);
  const layerPrefix = `${prefix}layers/${LAYER}/`;
  const results: ScenarioResult[] = [];
  const caches: TemplateCache[] = [];
  try {
    const files = layerShape(context.quick);
    const totalBytes = files.reduce((sum, file) => sum + file.size, 0);
    const pages = Math.ceil(files.length / PAGE);
    context.log(
      `uploading ${files.length} files, ${(totalBytes / 1e6).toFixed(0)} MB to ${config.endpoint}`,
    );
    const uploadMs = await timeMs(() =>
      mapLimit(files, 16, (file) => {
        const bytes = randomBytes(file.size);
        return storage.writeFile(LAYER, file.path, bytes, { size: bytes.length });
      }),
    );
    context.log(`uploaded in ${(uploadMs / 1000).toFixed(1)} s`);
    const runs = 3;
    let coldDir = 0;
    const fresh = () => join(context.tmpDir, `run-${++coldDir}`);

    // --- cold sync
    if (selected("cache.s3.cold")) {
      const ourCounts: RequestCounter[] = [];
      const theirCounts: RequestCounter[] = [];
      const timings = await interleave(
        runs,
        async () => {
          const dir = fresh();
          const cache = new TemplateCache({ storage, dir, concurrency: CONCURRENCY });
          const before = snapshot(ours);
          const ms = await timeMs(async () => (await cache.acquire(LAYER)).release());
          ourCounts.push(delta(ours, before));
          await cache.destroy();
          await rm(dir, { recursive: true, force: true });
          return ms;
        },
        async () => {
          const dir = fresh();
          const before = snapshot(theirs);
          const ms = await timeMs(() => naiveSync(raw, bucket, layerPrefix, dir));
          theirCounts.push(delta(theirs, before));
          await rm(dir, { recursive: true, force: true });
          return ms;
        },
        // No warm-up round: a cold sync moves the whole layer (~40 s a round
        // at full size) and the upload just before has warmed s3rver up.
        { warmup: context.quick ? 1 : 0 },
      );
      const ratio = median(timings.ours) / median(timings.baseline);
      const last = ourCounts.at(-1)!;
      results.push({
        id: "cache.s3.cold",
        name: `cold sync of a ${files.length}-file, ${(totalBytes / 1e6).toFixed(0)} MB layer`,
        unit: "ms",
        better: "lower",
        runs: timings.ours,
        baseline: {
          name: "aws-s3-sync-like parallel GETs",
          value: median(timings.baseline),
          runs: timings.baseline,
        },
        target:
          "≤ 1.5× baseline (hashing, verification, staging and swap included); 1 GET per file",
        met: ratio <= 1.5 && last.gets === files.length,
        extra: {
          files: files.length,
          bytes: totalBytes,
          requests: last.requests,
          gets: last.gets,
          listPages: last.lists,
          bytesMoved: last.getBytes,
          baselineRequests: theirCounts.at(-1)?.requests,
          baselineBytesMoved: theirCounts.at(-1)?.getBytes,
          throughputMBps: Number((totalBytes / 1e6 / (median(timings.ours) / 1000)).toFixed(1)),
        },
      });
    }

    // One warm cache and one warm baseline folder for the next two scenarios.
    const warmCache = new TemplateCache({ storage, dir: fresh(), concurrency: CONCURRENCY });
    caches.push(warmCache);
    const baselineDir = fresh();
    if (selected("cache.s3.warm") || selected("cache.s3.one-change")) {
      (await warmCache.acquire(LAYER)).release();
      await naiveSync(raw, bucket, layerPrefix, baselineDir);
    }

    // --- warm revalidation (nothing changed)
    if (selected("cache.s3.warm")) {
      const ourCounts: RequestCounter[] = [];
      const outcomes = new Set<string>();
      const timings = await interleave(
        context.quick ? 3 : 7,
        async () => {
          const before = snapshot(ours);
          const ms = await timeMs(async () => {
            const lease = await warmCache.acquire(LAYER);
            outcomes.add(lease.report.outcome);
            lease.release();
          });
          ourCounts.push(delta(ours, before));
          return ms;
        },
        () => timeMs(() => naiveSync(raw, bucket, layerPrefix, baselineDir)),
      );
      const worst = ourCounts.reduce((a, b) => (b.requests > a.requests ? b : a));
      const bytes = Math.max(...ourCounts.map((c) => c.getBytes));
      results.push({
        id: "cache.s3.warm",
        name: `warm revalidation, nothing changed (${files.length} files)`,
        unit: "ms",
        better: "lower",
        runs: timings.ours,
        baseline: {
          name: "aws-s3-sync-like list + stat",
          value: median(timings.baseline),
          runs: timings.baseline,
        },
        target: `O(listing pages): ${pages} request(s), 0 file bytes`,
        met: worst.requests === pages && worst.gets === 0 && bytes === 0 && outcomes.size === 1,
        extra: {
          requests: worst.requests,
          listPages: worst.lists,
          gets: worst.gets,
          bytesMoved: bytes,
          outcomes: [...outcomes],
          verify: "stat of every cached file",
        },
      });
    }

    // --- one file changed
    if (selected("cache.s3.one-change")) {
      const target = files[Math.floor(files.length / 2)]!;
      let flip = 0;
      // Each run changes the object's content and size (so the size-and-date
      // baseline notices it too, as `aws s3 sync` would).
      const change = async () => {
        const bytes = randomBytes(target.size + (++flip % 2 === 0 ? 0 : 1));
        await storage.writeFile(LAYER, target.path, bytes, { size: bytes.length });
        return bytes.length;
      };
      const ourCounts: RequestCounter[] = [];
      let changedBytes = 0;
      let downloaded = 0;
      const timings = await interleave(
        context.quick ? 3 : 5,
        async () => {
          changedBytes = await change();
          const before = snapshot(ours);
          const ms = await timeMs(async () => {
            const lease = await warmCache.acquire(LAYER);
            downloaded = lease.report.downloadedFiles;
            lease.release();
          });
          ourCounts.push(delta(ours, before));
          return ms;
        },
        async () => {
          await change();
          return timeMs(() => naiveSync(raw, bucket, layerPrefix, baselineDir));
        },
      );
      const last = ourCounts.at(-1)!;
      results.push({
        id: "cache.s3.one-change",
        name: `one file changed in a ${files.length}-file layer`,
        unit: "ms",
        better: "lower",
        runs: timings.ours,
        baseline: {
          name: "aws-s3-sync-like list + stat + 1 GET",
          value: median(timings.baseline),
          runs: timings.baseline,
        },
        target: `${pages} listing page(s) + 1 GET, only the changed file's bytes`,
        met:
          last.gets === 1 &&
          last.lists === pages &&
          last.getBytes === changedBytes &&
          downloaded === 1,
        extra: {
          requests: last.requests,
          listPages: last.lists,
          gets: last.gets,
          bytesMoved: last.getBytes,
          changedFileBytes: changedBytes,
          note: "ours builds a new generation (hard links for unchanged files) and swaps it atomically; the baseline overwrites in place",
        },
      });
    }
  } finally {
    for (const cache of caches) await cache.destroy();
    context.log("deleting the benchmark's objects");
    await deletePrefix(raw, bucket, prefix).catch((error) =>
      context.log(`cleanup failed: ${error}`),
    );
    raw.destroy();
    await storage.destroy();
  }
  return results;
}

const module: BenchModule = {
  name: "storage-s3",
  scenarios: SCENARIOS,
  run,
};

export default module;
