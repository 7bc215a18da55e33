import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { OrchestratorError } from "@orchestrator/core";
import { publishTemplate, TemplateCache } from "@orchestrator/core/cache";
import { describeTemplateStorageConformance } from "@orchestrator/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3TemplateStorage } from "../src/index.js";
import {
  baseConfig,
  countRequests,
  deletePrefix,
  freshStorage,
  putRaw,
  rawClient,
  runPrefix,
  s3SkipReason,
} from "./helpers.js";

describeTemplateStorageConformance(
  "S3TemplateStorage (s3rver)",
  () => {
    // Small pages, so the suite's 25-file layer spans three listing pages.
    const { storage, prefix } = freshStorage({ pageSize: 10 });
    return {
      storage,
      cleanup: async () => {
        const client = rawClient();
        await deletePrefix(client, prefix);
        client.destroy();
      },
    };
  },
  { skip: s3SkipReason },
);

async function codeOf(promise: Promise<unknown>): Promise<string | null> {
  try {
    await promise;
    return null;
  } catch (error) {
    return OrchestratorError.isInstance(error) ? error.code : `raw ${String(error)}`;
  }
}

describe.skipIf(s3SkipReason)("S3TemplateStorage against s3rver", () => {
  let client: S3Client;
  let work: string;

  beforeAll(async () => {
    client = rawClient();
    work = await mkdtemp(join(tmpdir(), "orch-s3-"));
  });

  afterAll(async () => {
    await deletePrefix(client, runPrefix);
    client.destroy();
    await rm(work, { recursive: true, force: true });
  });

  it("refuses unsafe keys put by other tools and skips console folder markers", async () => {
    const { storage, prefix } = freshStorage();
    await putRaw(client, `${prefix}layers/ok/dir/`, "");
    await putRaw(client, `${prefix}layers/ok/dir/file.txt`, "f");
    expect((await storage.listLayer("ok")).map((f) => f.path)).toEqual(["dir/file.txt"]);
    await putRaw(client, `${prefix}layers/evil/a\\b`, "x");
    await putRaw(client, `${prefix}layers/evil/bell\u0007`, "x");
    let caught: unknown;
    try {
      await storage.listLayer("evil");
    } catch (error) {
      caught = error;
    }
    expect(OrchestratorError.hasCode(caught, "TEMPLATE_INVALID")).toBe(true);
    expect((caught as OrchestratorError).details.issues).toHaveLength(2);
    storage.destroy();
  });

  it("keeps the mode and sha256 as metadata and vouches an MD5 etag in listings", async () => {
    const { storage } = freshStorage();
    const body = Buffer.from("#!/bin/sh\necho hi\n");
    const digest = "sha256:1c4b6a5f6d4b07c2bde6b7b4d2e6f3c4b1e5a2d9c8f7e6d5c4b3a29181716151";
    await expect(
      storage.writeFile("l", "run.sh", body, { size: body.length, mode: 0o755, digest }),
    ).resolves.toMatchObject({ mode: 0o755, digest });
    const read = await storage.readFile("l", "run.sh");
    if (read.notModified) throw new Error("unexpected");
    for await (const _ of read.body);
    expect(read.file).toMatchObject({ mode: 0o755, digest });
    const [listed] = await storage.listLayer("l");
    expect(listed?.digest).toMatch(/^md5:[0-9a-f]{32}$/);
    const plain = freshStorage({ etagIsContentMd5: false }).storage;
    expect((await plain.statFile("l", "run.sh"))?.digest).toBeUndefined();
    storage.destroy();
    plain.destroy();
  });

  it("classifies bad credentials, a missing bucket and an unreachable endpoint", async () => {
    const badKey = new S3TemplateStorage({
      ...baseConfig(),
      credentials: { accessKeyId: "NOT-A-KEY", secretAccessKey: "wrong" },
    });
    expect(await codeOf(badKey.listLayer("l"))).toBe("UNAUTHORIZED");
    const noBucket = new S3TemplateStorage({ ...baseConfig(), bucket: "orch-no-such-bucket" });
    const missing = noBucket.init();
    expect(await codeOf(missing)).toBe("UNAVAILABLE");
    await missing.catch((error) => expect(error.retryable).toBe(false));
    const down = new S3TemplateStorage({
      ...baseConfig(),
      endpoint: "http://127.0.0.1:1",
      retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
    });
    let caught: unknown;
    try {
      await down.listLayer("l");
    } catch (error) {
      caught = error;
    }
    expect(OrchestratorError.hasCode(caught, "UNAVAILABLE")).toBe(true);
    expect((caught as OrchestratorError).retryable).toBe(true);
    for (const storage of [badKey, noBucket, down]) await storage.destroy();
  });

  it("publishes a template and serves it through the cache: cold, warm (listing only), one change, storage down", async () => {
    const { storage, prefix } = freshStorage();
    const requests = countRequests(storage.client);
    const dir = join(work, "hello");
    const files: Record<string, string> = {
      "template.json": JSON.stringify({
        name: "hello-s3",
        layers: ["hello-s3"],
        runtime: { process: { command: ["node", "server.js"] } },
        resources: { memoryMb: 64, cpu: 0.1, diskMb: 10 },
      }),
    };
    for (let i = 0; i < 30; i++) files[`layers/hello-s3/f/${i}.txt`] = `file ${i}`;
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
    const published = await publishTemplate(storage, dir);
    expect(published.layers[0]?.uploaded).toHaveLength(30);
    // Re-publishing compares MD5 ETags from the listing: no upload, no download.
    requests.byCommand = {};
    const again = await publishTemplate(storage, dir);
    expect(again.layers[0]?.unchanged).toBe(30);
    expect(requests.byCommand.PutObjectCommand ?? 0).toBe(0);
    expect(requests.byCommand.GetObjectCommand).toBe(1); // the stored template.json

    const cacheDir = join(work, "cache");
    const cache = new TemplateCache({ storage, dir: cacheDir });
    const cold = await cache.acquire("hello-s3");
    expect(cold.report).toMatchObject({ outcome: "created", downloadedFiles: 30 });
    cold.release();

    requests.byCommand = {};
    const warm = await cache.acquire("hello-s3");
    expect(warm.report.outcome).toBe("hit");
    expect(requests.byCommand).toEqual({ ListObjectsV2Command: 1 });
    warm.release();

    await writeFile(join(dir, "layers/hello-s3/f/7.txt"), "changed!");
    await publishTemplate(storage, dir);
    requests.byCommand = {};
    const changed = await cache.acquire("hello-s3");
    expect(changed.report).toMatchObject({ outcome: "updated", downloadedFiles: 1 });
    expect(requests.byCommand).toEqual({ ListObjectsV2Command: 1, GetObjectCommand: 1 });
    changed.release();
    await cache.destroy();

    // The same cache folder with the storage unreachable: warm works, cold fails clearly.
    const down = new S3TemplateStorage({
      ...baseConfig(),
      prefix,
      endpoint: "http://127.0.0.1:1",
      retry: { attempts: 1 },
    });
    const warnings: string[] = [];
    const offline = new TemplateCache({
      storage: down,
      dir: cacheDir,
      retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
      onWarning: (warning) => warnings.push(warning.code),
    });
    const stale = await offline.acquire("hello-s3");
    expect(stale.stale).toBe(true);
    expect(warnings).toEqual(["STALE"]);
    stale.release();
    let caught: unknown;
    try {
      await offline.acquire("never-cached");
    } catch (error) {
      caught = error;
    }
    expect(OrchestratorError.hasCode(caught, "UNAVAILABLE")).toBe(true);
    expect((caught as OrchestratorError).retryable).toBe(true);
    await offline.destroy();
    await down.destroy();
    await storage.destroy();
  });
});
