/**
 * `TemplateStorage` over S3 and S3-compatible servers (MinIO, Ceph, R2,
 * s3rver). Keys, below an optional prefix:
 *
 *   layers/<layer>/<path>            the files of a layer
 *   templates/<name>/template.json   a template's document
 *
 * so a bucket is self-describing and can be managed with any S3 tool
 * (`aws s3 sync`). A file's POSIX mode and sha256 travel as object metadata
 * (`x-amz-meta-mode`, `x-amz-meta-sha256`); listings carry neither (S3 lists
 * no metadata), so a mode-only change is invisible to listing-based
 * revalidation: change the content, or publish under a new layer name.
 */
import { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import {
  assertLayerName,
  assertObjectKey,
  assertTemplateName,
  ConflictError,
  ForbiddenError,
  isValidName,
  MAX_TEMPLATE_DOCUMENT_BYTES,
  NotFoundError,
  OrchestratorError,
  objectKeyProblem,
  type ReadFile,
  type ReadOptions,
  type ReadResult,
  type StoredFile,
  TemplateInvalidError,
  type TemplateStorage,
  type TemplateStorageCapabilities,
  templateDocumentBytes,
  ValidationError,
  type ValidationIssue,
  type WriteBody,
  type WriteOptions,
} from "@orchestrator/core";
import { backoffDelay } from "@orchestrator/core/cache";
import { classifyS3Error } from "./classify-s3-error.js";
import type { S3TemplateStorageConfig } from "./s3-template-storage-config.js";

/** Largest single PUT S3 accepts (multipart uploads are not used). */
const MAX_PUT_BYTES = 5 * 1024 ** 3;

const MD5_ETAG = /^[0-9a-f]{32}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

function unquote(etag: string | undefined): string {
  return (etag ?? "").replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}

function quote(etag: string): string {
  return `"${etag}"`;
}

/** Bounds requests in flight (a counting semaphore). */
class RequestLimiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) {
      await new Promise<void>((resolve) => this.queue.push(resolve));
    } else {
      this.active += 1;
    }
    try {
      return await task();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}

/** The 304 the SDK throws for a matching If-None-Match: an answer, not a failure. */
function isNotModified(error: unknown): boolean {
  const shape = error as { name?: string; $metadata?: { httpStatusCode?: number } } | null;
  return shape?.$metadata?.httpStatusCode === 304 || shape?.name === "NotModified";
}

function isInvalidRange(error: unknown): boolean {
  const shape = error as { name?: string; $metadata?: { httpStatusCode?: number } } | null;
  return shape?.$metadata?.httpStatusCode === 416 || shape?.name === "InvalidRange";
}

const NOT_MODIFIED = Symbol("not modified");
const INVALID_RANGE = Symbol("invalid range");

export class S3TemplateStorage implements TemplateStorage {
  readonly capabilities: TemplateStorageCapabilities;
  /** The S3 client (yours when passed in `config.client`). */
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly ownsClient: boolean;
  private readonly limiter: RequestLimiter;
  private readonly retry: { attempts: number; baseDelayMs: number; maxDelayMs: number };
  private readonly pageSize: number;
  private readonly etagIsContentMd5: boolean;

  constructor(config: S3TemplateStorageConfig) {
    const issues: ValidationIssue[] = [];
    if (typeof config?.bucket !== "string" || config.bucket === "") {
      issues.push({ path: "bucket", message: "is required" });
    }
    const prefix = config?.prefix ?? "";
    if (prefix !== "" && (!prefix.endsWith("/") || objectKeyProblem(prefix.slice(0, -1)))) {
      issues.push({ path: "prefix", message: "must be a safe key prefix ending with '/'" });
    }
    const pageSize = config?.pageSize ?? 1000;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) {
      issues.push({ path: "pageSize", message: "must be an integer from 1 to 1000" });
    }
    const maxConcurrency = config?.maxConcurrency ?? 16;
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) {
      issues.push({ path: "maxConcurrency", message: "must be a positive integer" });
    }
    if (issues.length) throw new ValidationError(issues);
    this.bucket = config.bucket;
    this.prefix = prefix;
    this.pageSize = pageSize;
    this.etagIsContentMd5 = config.etagIsContentMd5 ?? true;
    this.limiter = new RequestLimiter(maxConcurrency);
    this.retry = {
      attempts: Math.max(1, config.retry?.attempts ?? 4),
      baseDelayMs: config.retry?.baseDelayMs ?? 100,
      maxDelayMs: config.retry?.maxDelayMs ?? 5000,
    };
    this.capabilities = {
      writable: !config.readOnly,
      rangedReads: true,
      maxFileBytes: MAX_PUT_BYTES,
    };
    if (config.client) {
      this.client = config.client;
      this.ownsClient = false;
    } else {
      const timeout = config.timeoutMs ?? 30_000;
      const agent = { keepAlive: true, maxSockets: maxConcurrency };
      this.client = new S3Client({
        region: config.region ?? "us-east-1",
        ...(config.endpoint ? { endpoint: config.endpoint } : {}),
        forcePathStyle: config.forcePathStyle ?? config.endpoint !== undefined,
        ...(config.credentials ? { credentials: config.credentials } : {}),
        requestChecksumCalculation: config.requestChecksumCalculation ?? "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
        // Retries are ours (classified, with jitter): the SDK's would multiply them.
        maxAttempts: 1,
        requestHandler: {
          connectionTimeout: timeout,
          requestTimeout: timeout,
          httpAgent: agent,
          httpsAgent: agent,
        },
      });
      this.ownsClient = true;
    }
  }

  /** Checks that the bucket is reachable and the credentials may list it. */
  async init(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.send(
      `bucket '${this.bucket}'`,
      (abortSignal) =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1 }),
          { abortSignal },
        ),
      options.signal,
    );
  }

  /** Closes the client's sockets (unless the client was passed in). */
  async destroy(): Promise<void> {
    if (this.ownsClient) this.client.destroy();
  }

  private layerPrefix(layer: string): string {
    return `${this.prefix}layers/${layer}/`;
  }

  private documentKey(name: string): string {
    return `${this.prefix}templates/${name}/template.json`;
  }

  /** Sends one request through the limiter, retrying retryable failures with jittered backoff. */
  private async send<T>(
    what: string,
    operation: (abortSignal: AbortSignal | undefined) => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      try {
        return await this.limiter.run(() => operation(signal));
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        const classified = classifyS3Error(error, what);
        if (!OrchestratorError.isInstance(classified)) throw classified; // an abort
        if (!classified.retryable || attempt + 1 >= this.retry.attempts) throw classified;
        const wait = backoffDelay(attempt, this.retry);
        await delay(wait, undefined, signal ? { signal } : {});
      }
    }
  }

  private writableOrThrow(): void {
    if (!this.capabilities.writable) throw new ForbiddenError("this template storage is read-only");
  }

  /** Paginated listing of every key under `prefix`. */
  private async listAll(
    prefix: string,
    what: string,
    signal: AbortSignal | undefined,
    each: (object: NonNullable<ListObjectsV2CommandOutput["Contents"]>[number]) => void,
  ): Promise<void> {
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.send(
        what,
        (abortSignal) =>
          this.client.send(
            new ListObjectsV2Command({
              Bucket: this.bucket,
              Prefix: prefix,
              MaxKeys: this.pageSize,
              ...(token ? { ContinuationToken: token } : {}),
            }),
            { abortSignal },
          ),
        signal,
      );
      for (const object of page.Contents ?? []) each(object);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  private md5Digest(etag: string): string | undefined {
    return this.etagIsContentMd5 && MD5_ETAG.test(etag) ? `md5:${etag}` : undefined;
  }

  async listLayer(layer: string, options: { signal?: AbortSignal } = {}): Promise<StoredFile[]> {
    assertLayerName(layer);
    options.signal?.throwIfAborted();
    const prefix = this.layerPrefix(layer);
    const files: StoredFile[] = [];
    const problems: ValidationIssue[] = [];
    await this.listAll(prefix, `layer '${layer}'`, options.signal, (object) => {
      const path = (object.Key ?? "").slice(prefix.length);
      // "Folder" placeholders that consoles create: not files.
      if (path.endsWith("/") && !object.Size) return;
      const problem = objectKeyProblem(path);
      if (problem) {
        problems.push({ path, message: problem });
        return;
      }
      const etag = unquote(object.ETag);
      const digest = this.md5Digest(etag);
      files.push({
        path,
        size: object.Size ?? 0,
        etag,
        modifiedAt: object.LastModified ?? new Date(0),
        ...(digest ? { digest } : {}),
      });
    });
    if (problems.length) {
      throw new TemplateInvalidError(
        `layer '${layer}' holds keys that are refused: ${problems
          .slice(0, 5)
          .map((p) => `${JSON.stringify(p.path)} ${p.message}`)
          .join("; ")}`,
        { details: { layer, issues: problems.slice(0, 50) } },
      );
    }
    if (files.length === 0) throw new NotFoundError("layer", layer);
    return files;
  }

  /** File metadata from a GET or HEAD response. */
  private describe(
    path: string,
    output: GetObjectCommandOutput | HeadObjectCommandOutput,
    size: number,
  ): ReadFile {
    const etag = unquote(output.ETag);
    const rawMode = output.Metadata?.mode;
    const mode =
      rawMode && /^[0-7]{1,4}$/.test(rawMode) ? Number.parseInt(rawMode, 8) & 0o777 : 0o644;
    const sha256 = output.Metadata?.sha256;
    const digest = sha256 && SHA256_HEX.test(sha256) ? `sha256:${sha256}` : this.md5Digest(etag);
    return {
      path,
      size,
      etag,
      mode,
      modifiedAt: output.LastModified ?? new Date(0),
      ...(digest ? { digest } : {}),
    };
  }

  private async head(
    layer: string,
    path: string,
    signal: AbortSignal | undefined,
  ): Promise<ReadFile | null> {
    try {
      const output = await this.send(
        `${layer}/${path}`,
        (abortSignal) =>
          this.client.send(
            new HeadObjectCommand({ Bucket: this.bucket, Key: this.layerPrefix(layer) + path }),
            { abortSignal },
          ),
        signal,
      );
      return this.describe(path, output, output.ContentLength ?? 0);
    } catch (error) {
      if (OrchestratorError.hasCode(error, "NOT_FOUND")) return null;
      throw error;
    }
  }

  async statFile(
    layer: string,
    path: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<ReadFile | null> {
    assertLayerName(layer);
    assertObjectKey(path);
    options.signal?.throwIfAborted();
    return this.head(layer, path, options.signal);
  }

  async readFile(layer: string, path: string, options: ReadOptions = {}): Promise<ReadResult> {
    assertLayerName(layer);
    assertObjectKey(path);
    const { signal, ifMatch, ifNoneMatch } = options;
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new ValidationError([{ path: "offset", message: "must be a non-negative integer" }]);
    }
    signal?.throwIfAborted();
    const what = `${layer}/${path}`;
    const output = await this.send(
      what,
      async (abortSignal) => {
        try {
          return await this.client.send(
            new GetObjectCommand({
              Bucket: this.bucket,
              Key: this.layerPrefix(layer) + path,
              ...(ifMatch !== undefined ? { IfMatch: quote(ifMatch) } : {}),
              ...(ifNoneMatch !== undefined ? { IfNoneMatch: quote(ifNoneMatch) } : {}),
              ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}),
            }),
            { abortSignal },
          );
        } catch (error) {
          if (isNotModified(error)) return NOT_MODIFIED;
          if (isInvalidRange(error)) return INVALID_RANGE;
          throw error;
        }
      },
      signal,
    );
    if (output === NOT_MODIFIED) return { notModified: true };
    if (output === INVALID_RANGE) {
      // `bytes=<size>-` is "not satisfiable" for S3: reading from the end is an empty body.
      const file = await this.head(layer, path, signal);
      if (!file) throw new NotFoundError("object", what);
      if (ifMatch !== undefined && file.etag !== ifMatch) {
        throw new ConflictError(`${what} changed (etag ${file.etag}, expected ${ifMatch})`);
      }
      if (offset > file.size) {
        throw new ValidationError([{ path: "offset", message: `must be at most ${file.size}` }]);
      }
      return { notModified: false, file, body: (async function* () {})() };
    }
    const stream = output.Body as Readable | undefined;
    const total = /\/(\d+)$/.exec(output.ContentRange ?? "")?.[1];
    const size = total !== undefined ? Number(total) : (output.ContentLength ?? 0) + offset;
    const file = this.describe(path, output, size);
    // Servers that ignore the conditional headers (s3rver ignores If-Match):
    // the answer is checked here too.
    if (ifMatch !== undefined && file.etag !== ifMatch) {
      stream?.destroy();
      throw new ConflictError(`${what} changed (etag ${file.etag}, expected ${ifMatch})`);
    }
    if (ifNoneMatch !== undefined && file.etag === ifNoneMatch) {
      stream?.destroy();
      return { notModified: true };
    }
    return { notModified: false, file, body: this.body(stream, what) };
  }

  /** The response stream, with failures mid-download classified (and the socket freed on early exit). */
  private async *body(stream: Readable | undefined, what: string): AsyncGenerator<Uint8Array> {
    if (!stream) return;
    try {
      for await (const chunk of stream) yield chunk as Uint8Array;
    } catch (error) {
      throw classifyS3Error(error, what);
    } finally {
      stream.destroy();
    }
  }

  async writeFile(
    layer: string,
    path: string,
    body: WriteBody,
    options: WriteOptions,
  ): Promise<StoredFile> {
    this.writableOrThrow();
    assertLayerName(layer);
    assertObjectKey(path);
    const { size, signal } = options ?? {};
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new ValidationError([{ path: "size", message: "must be a non-negative integer" }]);
    }
    if (size > MAX_PUT_BYTES) {
      throw new ValidationError([
        { path: "size", message: `must be at most ${MAX_PUT_BYTES} bytes` },
      ]);
    }
    const mode = options.mode ?? 0o644;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
      throw new ValidationError([{ path: "mode", message: "must be POSIX permission bits" }]);
    }
    const sha256 = options.digest?.startsWith("sha256:") ? options.digest.slice(7) : undefined;
    if (sha256 !== undefined && !SHA256_HEX.test(sha256)) {
      throw new ValidationError([{ path: "digest", message: "must be sha256:<64 hex digits>" }]);
    }
    if (body instanceof Uint8Array && body.length !== size) {
      throw new ValidationError([
        { path: "size", message: `body has ${body.length} bytes, declared ${size}` },
      ]);
    }
    signal?.throwIfAborted();
    const what = `${layer}/${path}`;
    // A body of the wrong length must fail the upload, never hang it
    // (Content-Length is fixed): the counting stream aborts the request as
    // soon as it knows, and the size problem is what the caller sees.
    let sizeProblem: ValidationError | null = null;
    const upload = new AbortController();
    const abortUpload = () => upload.abort(signal?.reason);
    signal?.addEventListener("abort", abortUpload, { once: true });
    const refuse = (message: string) => {
      sizeProblem = new ValidationError([{ path: "size", message: `${what}: ${message}` }]);
      upload.abort(sizeProblem);
    };
    async function* counted(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
      let seen = 0;
      for await (const chunk of source) {
        seen += chunk.length;
        if (seen > size) return refuse(`body is longer than the declared ${size} bytes`);
        yield chunk;
      }
      if (seen !== size) refuse(`body has ${seen} bytes, declared ${size}`);
    }
    try {
      const output = await this.send(
        what,
        () =>
          this.client.send(
            new PutObjectCommand({
              Bucket: this.bucket,
              Key: this.layerPrefix(layer) + path,
              Body: body instanceof Uint8Array ? body : Readable.from(counted(body())),
              ContentLength: size,
              ContentType: "application/octet-stream",
              Metadata: {
                mode: (mode & 0o777).toString(8),
                ...(sha256 ? { sha256 } : {}),
              },
            }),
            { abortSignal: upload.signal },
          ),
        signal,
      );
      const etag = unquote(output.ETag);
      const digest = sha256 ? `sha256:${sha256}` : this.md5Digest(etag);
      return {
        path,
        size,
        etag,
        mode: mode & 0o777,
        modifiedAt: new Date(),
        ...(digest ? { digest } : {}),
      };
    } catch (error) {
      if (sizeProblem) throw sizeProblem;
      throw error;
    } finally {
      signal?.removeEventListener("abort", abortUpload);
    }
  }

  async deleteFile(
    layer: string,
    path: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    this.writableOrThrow();
    assertLayerName(layer);
    assertObjectKey(path);
    options.signal?.throwIfAborted();
    // S3 answers 204 for a missing key too.
    await this.send(
      `${layer}/${path}`,
      (abortSignal) =>
        this.client.send(
          new DeleteObjectCommand({ Bucket: this.bucket, Key: this.layerPrefix(layer) + path }),
          { abortSignal },
        ),
      options.signal,
    );
  }

  async readTemplateDocument(
    name: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<string | null> {
    assertTemplateName(name);
    options.signal?.throwIfAborted();
    const what = `templates/${name}/template.json`;
    let output: GetObjectCommandOutput;
    try {
      output = await this.send(
        what,
        (abortSignal) =>
          this.client.send(
            new GetObjectCommand({ Bucket: this.bucket, Key: this.documentKey(name) }),
            {
              abortSignal,
            },
          ),
        options.signal,
      );
    } catch (error) {
      if (OrchestratorError.hasCode(error, "NOT_FOUND")) return null;
      throw error;
    }
    const stream = output.Body as Readable | undefined;
    if ((output.ContentLength ?? 0) > MAX_TEMPLATE_DOCUMENT_BYTES) {
      stream?.destroy();
      throw new TemplateInvalidError(`${what} is larger than ${MAX_TEMPLATE_DOCUMENT_BYTES} bytes`);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of this.body(stream, what)) chunks.push(Buffer.from(chunk));
    return Buffer.concat(chunks).toString("utf8");
  }

  async writeTemplateDocument(
    name: string,
    json: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    this.writableOrThrow();
    const bytes = templateDocumentBytes(name, json);
    options.signal?.throwIfAborted();
    await this.send(
      `templates/${name}/template.json`,
      (abortSignal) =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.documentKey(name),
            Body: bytes,
            ContentLength: bytes.length,
            ContentType: "application/json",
          }),
          { abortSignal },
        ),
      options.signal,
    );
  }

  async listTemplates(options: { signal?: AbortSignal } = {}): Promise<string[]> {
    options.signal?.throwIfAborted();
    const prefix = `${this.prefix}templates/`;
    const names: string[] = [];
    await this.listAll(prefix, "templates", options.signal, (object) => {
      const key = (object.Key ?? "").slice(prefix.length);
      if (!key.endsWith("/template.json")) return;
      const name = key.slice(0, -"/template.json".length);
      // Only names that can be read back are listed.
      if (isValidName(name)) names.push(name);
    });
    return names.sort();
  }
}
