import type { S3Client } from "@aws-sdk/client-s3";
import { OrchestratorError } from "@orchestrator/core";
import { describe, expect, it } from "vitest";
import { classifyS3Error, S3TemplateStorage } from "../src/index.js";

function sdkError(name: string, status?: number, message = name) {
  return Object.assign(new Error(message), {
    name,
    ...(status === undefined ? {} : { $metadata: { httpStatusCode: status } }),
  });
}

function classified(error: unknown) {
  const result = classifyS3Error(error, "layers/x/y");
  if (!OrchestratorError.isInstance(result)) return { code: "passthrough", retryable: false };
  return { code: result.code, retryable: result.retryable };
}

describe("classifyS3Error", () => {
  it.each([
    [sdkError("NoSuchKey", 404), "NOT_FOUND", false],
    [sdkError("NotFound", 404), "NOT_FOUND", false],
    [sdkError("NoSuchBucket", 404), "UNAVAILABLE", false],
    [sdkError("PreconditionFailed", 412), "CONFLICT", false],
    [sdkError("AccessDenied", 403), "FORBIDDEN", false],
    [sdkError("InvalidAccessKeyId", 403), "UNAUTHORIZED", false],
    [sdkError("SignatureDoesNotMatch", 403), "UNAUTHORIZED", false],
    [sdkError("ExpiredToken", 400), "UNAUTHORIZED", false],
    [sdkError("CredentialsProviderError"), "UNAUTHORIZED", false],
    [sdkError("RequestTimeTooSkewed", 403), "UNAUTHORIZED", false],
    [sdkError("EntityTooLarge", 400), "VALIDATION_FAILED", false],
    [sdkError("SlowDown", 503), "UNAVAILABLE", true],
    [sdkError("TooManyRequests", 429), "UNAVAILABLE", true],
    [sdkError("InternalError", 500), "UNAVAILABLE", true],
    [sdkError("RequestTimeout", 400), "UNAVAILABLE", true],
    [sdkError("Weird", 502), "UNAVAILABLE", true],
    [
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
      "UNAVAILABLE",
      true,
    ],
    [new Error("socket hang up"), "UNAVAILABLE", true],
    [
      new Error("wrapped", { cause: Object.assign(new Error("x"), { code: "ETIMEDOUT" }) }),
      "UNAVAILABLE",
      true,
    ],
    [sdkError("InvalidArgument", 400), "INTERNAL", false],
    [new TypeError("a bug"), "INTERNAL", false],
  ])("%s → %s", (error, code, retryable) => {
    expect(classified(error)).toEqual({ code, retryable });
  });

  it("passes aborts and OrchestratorErrors through untouched", () => {
    const abort = sdkError("AbortError");
    expect(classifyS3Error(abort, "x")).toBe(abort);
    const own = new OrchestratorError("CONFLICT", "mine");
    expect(classifyS3Error(own, "x")).toBe(own);
  });
});

describe("S3TemplateStorage retries and limits (fake client)", () => {
  function fakeClient(answers: ((command: unknown) => unknown)[]) {
    let calls = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const client = {
      async send(command: unknown) {
        const answer = answers[Math.min(calls++, answers.length - 1)]!;
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          await new Promise((resolve) => setTimeout(resolve, 1));
          return answer(command);
        } finally {
          inFlight -= 1;
        }
      },
      destroy() {},
    };
    return {
      client: client as unknown as S3Client,
      stats: () => ({ calls, maxInFlight }),
    };
  }

  const page = { Contents: [{ Key: "layers/l/a.txt", Size: 1, ETag: '"x"' }], IsTruncated: false };

  it("retries retryable failures with backoff, then succeeds", async () => {
    const { client, stats } = fakeClient([
      () => {
        throw sdkError("SlowDown", 503);
      },
      () => {
        throw Object.assign(new Error("reset"), { code: "ECONNRESET" });
      },
      () => page,
    ]);
    const storage = new S3TemplateStorage({
      bucket: "b",
      client,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
    });
    expect((await storage.listLayer("l")).map((f) => f.path)).toEqual(["a.txt"]);
    expect(stats().calls).toBe(3);
  });

  it("does not retry definitive answers", async () => {
    const { client, stats } = fakeClient([
      () => {
        throw sdkError("AccessDenied", 403);
      },
    ]);
    const storage = new S3TemplateStorage({
      bucket: "b",
      client,
      retry: { attempts: 5, baseDelayMs: 1 },
    });
    expect(
      OrchestratorError.hasCode(await storage.listLayer("l").catch((e) => e), "FORBIDDEN"),
    ).toBe(true);
    expect(stats().calls).toBe(1);
  });

  it("keeps at most maxConcurrency requests in flight", async () => {
    const { client, stats } = fakeClient([() => ({ ETag: '"e"' })]);
    const storage = new S3TemplateStorage({ bucket: "b", client, maxConcurrency: 3 });
    const body = new Uint8Array([1]);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => storage.writeFile("l", `f${i}`, body, { size: 1 })),
    );
    expect(stats().calls).toBe(20);
    expect(stats().maxInFlight).toBe(3);
  });

  it("validates its configuration", () => {
    expect(() => new S3TemplateStorage({ bucket: "" })).toThrowError(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
    expect(() => new S3TemplateStorage({ bucket: "b", prefix: "no-slash" })).toThrowError(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
    expect(() => new S3TemplateStorage({ bucket: "b", pageSize: 5000 })).toThrowError(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
  });
});
