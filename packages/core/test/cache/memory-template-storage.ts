/**
 * An in-memory TemplateStorage with fault injection, for the cache tests (and
 * as a check of the conformance suite itself). Reads stream in small chunks so
 * tests can act "during a download".
 */
import { createHash } from "node:crypto";
import {
  ConflictError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from "../../src/errors/orchestrator-error.js";
import type {
  ReadFile,
  ReadOptions,
  ReadResult,
  StoredFile,
  TemplateStorage,
  WriteBody,
  WriteOptions,
} from "../../src/ports/template-storage.js";
import {
  assertLayerName,
  assertObjectKey,
  assertTemplateName,
} from "../../src/template-document/index.js";

interface Entry {
  bytes: Buffer;
  mode: number;
  etag: string;
  modifiedAt: Date;
}

export interface MemoryStorageHooks {
  /** Called before each chunk of a read body is yielded (chunk index from 0). */
  beforeChunk?: (layer: string, path: string, index: number) => void | Promise<void>;
  /** Called at the start of every read; throw to fail it. */
  beforeRead?: (layer: string, path: string) => void | Promise<void>;
  /** Called at the start of every listing; throw to fail it. */
  beforeList?: (layer: string) => void | Promise<void>;
}

export class MemoryTemplateStorage implements TemplateStorage {
  readonly capabilities = { writable: true, rangedReads: true };
  readonly layers = new Map<string, Map<string, Entry>>();
  readonly documents = new Map<string, string>();
  /** When true, every call fails with a retryable UNAVAILABLE (storage down). */
  down = false;
  /** Report a `sha256:` digest on reads (a storage that vouches for content). */
  vouchDigest = true;
  /** Also report it in listings (as S3 does with MD5 ETags). */
  listDigest = false;
  chunkSize = 64 * 1024;
  hooks: MemoryStorageHooks = {};
  readonly calls = { list: 0, read: 0, stat: 0, write: 0, delete: 0 };
  private readonly counters = { bytesRead: 0, version: 0 };

  /** Body bytes handed out by reads so far. */
  get bytesRead(): number {
    return this.counters.bytesRead;
  }

  private check(signal?: AbortSignal): void {
    signal?.throwIfAborted();
    if (this.down) throw new UnavailableError("memory storage is down");
  }

  /** Puts a file directly (a publish by someone else). */
  put(layer: string, path: string, content: string | Uint8Array, mode = 0o644): StoredFile {
    let files = this.layers.get(layer);
    if (!files) {
      files = new Map();
      this.layers.set(layer, files);
    }
    const entry: Entry = {
      bytes: Buffer.from(content),
      mode,
      etag: `m${++this.counters.version}`,
      modifiedAt: new Date(),
    };
    files.set(path, entry);
    return this.describe(path, entry);
  }

  /** Removes a file directly. */
  remove(layer: string, path: string): void {
    const files = this.layers.get(layer);
    files?.delete(path);
    if (files?.size === 0) this.layers.delete(layer);
  }

  private describe(path: string, entry: Entry): ReadFile {
    return {
      path,
      size: entry.bytes.length,
      etag: entry.etag,
      mode: entry.mode,
      modifiedAt: entry.modifiedAt,
      ...(this.vouchDigest
        ? { digest: `sha256:${createHash("sha256").update(entry.bytes).digest("hex")}` }
        : {}),
    };
  }

  async listLayer(layer: string, options: { signal?: AbortSignal } = {}): Promise<StoredFile[]> {
    assertLayerName(layer);
    this.check(options.signal);
    this.calls.list += 1;
    await this.hooks.beforeList?.(layer);
    const files = this.layers.get(layer);
    if (!files || files.size === 0) throw new NotFoundError("layer", layer);
    return [...files].map(([path, entry]) => {
      const { digest, ...listed } = this.describe(path, entry);
      return this.listDigest && digest ? { ...listed, digest } : listed;
    });
  }

  async statFile(
    layer: string,
    path: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<ReadFile | null> {
    assertLayerName(layer);
    assertObjectKey(path);
    this.check(options.signal);
    this.calls.stat += 1;
    const entry = this.layers.get(layer)?.get(path);
    return entry ? this.describe(path, entry) : null;
  }

  async readFile(layer: string, path: string, options: ReadOptions = {}): Promise<ReadResult> {
    assertLayerName(layer);
    assertObjectKey(path);
    this.check(options.signal);
    this.calls.read += 1;
    await this.hooks.beforeRead?.(layer, path);
    const entry = this.layers.get(layer)?.get(path);
    if (!entry) throw new NotFoundError("file", `${layer}/${path}`);
    if (options.ifNoneMatch === entry.etag) return { notModified: true };
    if (options.ifMatch !== undefined && options.ifMatch !== entry.etag) {
      throw new ConflictError(`${layer}/${path} changed`);
    }
    // Like S3: the body is a snapshot of the object as it was when the read began.
    const snapshot = entry.bytes.subarray(options.offset ?? 0);
    const hooks = this.hooks;
    const chunkSize = this.chunkSize;
    const counters = this.counters;
    const count = (n: number) => {
      counters.bytesRead += n;
    };
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let offset = 0, index = 0; offset < snapshot.length; offset += chunkSize, index++) {
        await hooks.beforeChunk?.(layer, path, index);
        const chunk = snapshot.subarray(offset, offset + chunkSize);
        count(chunk.length);
        yield chunk;
      }
    }
    return { notModified: false, file: this.describe(path, entry), body: body() };
  }

  async writeFile(
    layer: string,
    path: string,
    body: WriteBody,
    options: WriteOptions,
  ): Promise<StoredFile> {
    assertLayerName(layer);
    assertObjectKey(path);
    this.check(options.signal);
    this.calls.write += 1;
    let bytes: Buffer;
    if (body instanceof Uint8Array) bytes = Buffer.from(body);
    else {
      const chunks: Buffer[] = [];
      for await (const chunk of body()) chunks.push(Buffer.from(chunk));
      bytes = Buffer.concat(chunks);
    }
    if (bytes.length !== options.size) {
      throw new ValidationError([
        { path: "size", message: `body has ${bytes.length} bytes, declared ${options.size}` },
      ]);
    }
    return this.put(layer, path, bytes, options.mode ?? 0o644);
  }

  async deleteFile(layer: string, path: string, options: { signal?: AbortSignal } = {}) {
    assertLayerName(layer);
    assertObjectKey(path);
    this.check(options.signal);
    this.calls.delete += 1;
    this.remove(layer, path);
  }

  async readTemplateDocument(name: string, options: { signal?: AbortSignal } = {}) {
    assertTemplateName(name);
    this.check(options.signal);
    return this.documents.get(name) ?? null;
  }

  async writeTemplateDocument(name: string, json: string, options: { signal?: AbortSignal } = {}) {
    assertTemplateName(name);
    this.check(options.signal);
    this.documents.set(name, json);
  }

  async listTemplates(options: { signal?: AbortSignal } = {}) {
    this.check(options.signal);
    return [...this.documents.keys()].sort();
  }
}
