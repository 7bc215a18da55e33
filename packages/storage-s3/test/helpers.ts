/** Shared by the S3 tests: a client for the test server and per-run key prefixes. */
import { randomUUID } from "node:crypto";
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { testServiceEnv, testServiceSkipReason } from "@orchestrator/core/testing";
import { S3TemplateStorage, type S3TemplateStorageConfig } from "../src/index.js";

export const s3Env = testServiceEnv("s3");
export const s3SkipReason = testServiceSkipReason("s3");

/** One prefix per test run, so runs never see each other's keys. */
export const runPrefix = `orch-test-${randomUUID().slice(0, 8)}/`;
let counter = 0;

export function baseConfig(): S3TemplateStorageConfig {
  if (!s3Env) throw new Error(s3SkipReason ?? "no S3");
  return {
    bucket: s3Env.ORCH_TEST_S3_BUCKET!,
    endpoint: s3Env.ORCH_TEST_S3_ENDPOINT!,
    region: s3Env.ORCH_TEST_S3_REGION!,
    forcePathStyle: true,
    credentials: {
      accessKeyId: s3Env.ORCH_TEST_S3_ACCESS_KEY!,
      secretAccessKey: s3Env.ORCH_TEST_S3_SECRET_KEY!,
    },
    retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 20 },
  };
}

/** A fresh storage under its own prefix. */
export function freshStorage(overrides: Partial<S3TemplateStorageConfig> = {}) {
  const prefix = `${runPrefix}${++counter}/`;
  const storage = new S3TemplateStorage({ ...baseConfig(), prefix, ...overrides });
  return { storage, prefix };
}

/** A plain client, to put raw objects as another S3 tool would. */
export function rawClient(): S3Client {
  const config = baseConfig();
  return new S3Client({
    region: config.region!,
    endpoint: config.endpoint!,
    forcePathStyle: true,
    credentials: config.credentials!,
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
}

export async function putRaw(client: S3Client, key: string, body: string): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: baseConfig().bucket, Key: key, Body: body }));
}

/** Deletes every key under `prefix`. */
export async function deletePrefix(client: S3Client, prefix: string): Promise<void> {
  const bucket = baseConfig().bucket;
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
      // s3rver sometimes fails batch deletes of nested keys: one by one then.
      for (const Key of keys) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
    }
  }
}

/** Counts the HTTP requests a client sends (added as SDK middleware). */
export function countRequests(client: S3Client): {
  count: number;
  byCommand: Record<string, number>;
} {
  const counter = { count: 0, byCommand: {} as Record<string, number> };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      counter.count += 1;
      const name = context.commandName ?? "unknown";
      counter.byCommand[name] = (counter.byCommand[name] ?? 0) + 1;
      return next(args);
    },
    { step: "finalizeRequest", name: `orchestratorRequestCounter${randomUUID()}` },
  );
  return counter;
}
