/**
 * `TemplateStorage` over a local folder, the embedded default:
 *
 *   <root>/layers/<layer>/<path>            the files of a layer
 *   <root>/templates/<name>/template.json   a template's document
 *   <root>/.tmp/                            in-flight writes (never listed)
 *
 * Writes go to a temp file in `.tmp/` and are renamed into place, so readers
 * see the old or the new content, never a mix. The etag is built from `stat`
 * (size, mtime in ns, inode, mode): cheap to list for thousands of files, and
 * it changes on every write (a new inode each time) and on `chmod`. Symlinks,
 * devices, FIFOs and sockets inside the folder are refused, never followed.
 */
import { createHash, randomUUID } from "node:crypto";
import type { BigIntStats } from "node:fs";
import { constants } from "node:fs";
import {
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
} from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import {
  assertLayerName,
  assertObjectKey,
  assertTemplateName,
  ConflictError,
  ForbiddenError,
  isValidName,
  MAX_NAME_SEGMENTS,
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
  UnavailableError,
  ValidationError,
  type ValidationIssue,
  type WriteBody,
  type WriteOptions,
} from "@orchestrator/core";
import type { FolderTemplateStorageConfig } from "./folder-template-storage-config.js";

const READ_CHUNK_BYTES = 256 * 1024;
const MAX_REPORTED_PROBLEMS = 50;

/**
 * Classifies a Node file-system error into core's error codes (the one place
 * this adapter does so). Abort errors pass through unchanged.
 */
export function classifyFsError(error: unknown, what: string): unknown {
  if (OrchestratorError.isInstance(error)) return error;
  if (error instanceof Error && error.name === "AbortError") return error;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case "ENOENT":
    case "ENOTDIR":
      return new NotFoundError("file", what, { cause: error });
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return new ForbiddenError(`no permission for ${what} (${code})`, { cause: error });
    case "ELOOP":
      return new TemplateInvalidError(`${what} is a symlink; symlinks are refused`, {
        cause: error,
      });
    case "EISDIR":
    case "EEXIST":
    case "ENOTEMPTY":
      return new ConflictError(`${what} clashes with a folder or file of the same name (${code})`, {
        cause: error,
      });
    case "ENOSPC":
    case "EDQUOT":
    case "EIO":
    case "EMFILE":
    case "ENFILE":
    case "EBUSY":
    case "EAGAIN":
      return new UnavailableError(`storage folder unavailable for ${what} (${code})`, {
        cause: error,
      });
    default:
      return new OrchestratorError(
        "INTERNAL",
        `storage folder failed for ${what}: ${String(error)}`,
        {
          cause: error,
        },
      );
  }
}

function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
}

function etagOf(stats: BigIntStats): string {
  const mode = Number(stats.mode) & 0o777;
  return `${stats.size.toString(16)}-${stats.mtimeNs.toString(16)}-${stats.ino.toString(16)}-${mode.toString(8)}`;
}

function describe(path: string, stats: BigIntStats): ReadFile {
  return {
    path,
    size: Number(stats.size),
    etag: etagOf(stats),
    mode: Number(stats.mode) & 0o777,
    modifiedAt: new Date(Number(stats.mtimeMs)),
  };
}

function kindOf(stats: { isSymbolicLink(): boolean; isDirectory(): boolean; isFile(): boolean }) {
  if (stats.isSymbolicLink()) return "a symlink";
  if (stats.isDirectory()) return "a folder";
  if (stats.isFile()) return "a file";
  return "a device, FIFO or socket";
}

function checkMode(mode: number | undefined): number {
  const value = mode ?? 0o644;
  if (!Number.isInteger(value) || value < 0 || value > 0o7777) {
    throw new ValidationError([{ path: "mode", message: "must be POSIX permission bits" }]);
  }
  // setuid/setgid/sticky bits are never kept (DESIGN §5a).
  return value & 0o777;
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new ValidationError([{ path: "size", message: "must be a non-negative integer" }]);
  }
}

export class FolderTemplateStorage implements TemplateStorage {
  readonly capabilities: TemplateStorageCapabilities;
  private readonly root: string;
  private readonly fsync: boolean;
  private readonly staleTempFileMs: number;
  private realRoot: Promise<string> | null = null;
  private tmpReady: Promise<void> | null = null;

  constructor(config: FolderTemplateStorageConfig) {
    if (typeof config?.root !== "string" || config.root === "") {
      throw new ValidationError([{ path: "root", message: "must be a folder path" }]);
    }
    this.root = resolve(config.root);
    this.fsync = config.fsync ?? true;
    this.staleTempFileMs = config.staleTempFileMs ?? 60 * 60_000;
    this.capabilities = { writable: !config.readOnly, rangedReads: true, maxFileBytes: null };
  }

  /** Creates the folder layout (writable) or checks the folder exists (read-only); removes stale temp files. */
  async init(): Promise<void> {
    try {
      if (this.capabilities.writable) {
        await mkdir(join(this.root, "layers"), { recursive: true });
        await mkdir(join(this.root, "templates"), { recursive: true });
        await mkdir(join(this.root, ".tmp"), { recursive: true });
        const cutoff = Date.now() - this.staleTempFileMs;
        for (const entry of await readdir(join(this.root, ".tmp"))) {
          const path = join(this.root, ".tmp", entry);
          const stats = await lstat(path).catch(() => null);
          if (stats && stats.mtimeMs < cutoff) await rm(path, { force: true, recursive: true });
        }
      } else if (!(await stat(this.root)).isDirectory()) {
        throw new NotFoundError("storage folder", this.root);
      }
    } catch (error) {
      throw classifyFsError(error, `storage folder ${this.root}`);
    }
  }

  private async resolvedRoot(): Promise<string> {
    this.realRoot ??= realpath(this.root).catch((error) => {
      this.realRoot = null;
      throw error;
    });
    return this.realRoot;
  }

  private layerDir(layer: string): string {
    return join(this.root, "layers", ...layer.split("/"));
  }

  private filePath(layer: string, path: string): string {
    return join(this.layerDir(layer), ...path.split("/"));
  }

  private documentPath(name: string): string {
    return join(this.root, "templates", ...name.split("/"), "template.json");
  }

  /**
   * Refuses a path that is reached through a symlink anywhere below the root:
   * its real path must be exactly where the name says.
   */
  private async assertNoSymlinkOnTheWay(path: string, what: string): Promise<void> {
    const [real, root] = await Promise.all([realpath(path), this.resolvedRoot()]);
    const relative = path.slice(this.root.length);
    const expected = join(root, relative);
    if (real !== expected) {
      throw new TemplateInvalidError(`${what} is reached through a symlink; symlinks are refused`);
    }
  }

  private writableOrThrow(): void {
    if (!this.capabilities.writable) throw new ForbiddenError("this template storage is read-only");
  }

  async listLayer(layer: string, options: { signal?: AbortSignal } = {}): Promise<StoredFile[]> {
    assertLayerName(layer);
    options.signal?.throwIfAborted();
    const dir = this.layerDir(layer);
    try {
      const stats = await lstat(dir);
      if (!stats.isDirectory() && !stats.isSymbolicLink()) throw new NotFoundError("layer", layer);
      await this.assertNoSymlinkOnTheWay(dir, `layer '${layer}'`);
    } catch (error) {
      if (errnoCode(error) === "ENOENT" || errnoCode(error) === "ENOTDIR") {
        throw new NotFoundError("layer", layer, { cause: error });
      }
      throw classifyFsError(error, `layer '${layer}'`);
    }
    const files: StoredFile[] = [];
    const problems: ValidationIssue[] = [];
    const walk = async (absolute: string, relative: string): Promise<void> => {
      options.signal?.throwIfAborted();
      const entries = await readdir(absolute, { withFileTypes: true });
      await Promise.all(
        entries.map(async (entry) => {
          const key = relative ? `${relative}/${entry.name}` : entry.name;
          const problem = objectKeyProblem(key);
          if (problem) {
            problems.push({ path: key, message: problem });
            return;
          }
          const child = join(absolute, entry.name);
          if (entry.isDirectory()) return walk(child, key);
          if (!entry.isFile()) {
            problems.push({
              path: key,
              message: `is ${kindOf(entry)}; only files and folders are allowed`,
            });
            return;
          }
          const stats = await lstat(child, { bigint: true });
          if (!stats.isFile()) {
            problems.push({ path: key, message: `is ${kindOf(stats)}; only files are allowed` });
            return;
          }
          files.push(describe(key, stats));
        }),
      );
    };
    try {
      await walk(dir, "");
    } catch (error) {
      throw classifyFsError(error, `layer '${layer}'`);
    }
    if (problems.length > 0) {
      problems.sort((a, b) => (a.path < b.path ? -1 : 1));
      throw new TemplateInvalidError(
        `layer '${layer}' holds entries that are refused: ${problems
          .slice(0, 5)
          .map((p) => `${JSON.stringify(p.path)} ${p.message}`)
          .join("; ")}${problems.length > 5 ? `; and ${problems.length - 5} more` : ""}`,
        { details: { layer, issues: problems.slice(0, MAX_REPORTED_PROBLEMS) } },
      );
    }
    if (files.length === 0) throw new NotFoundError("layer", layer);
    return files;
  }

  /** lstat of a layer file, refusing anything that is not a plain file reached without symlinks. */
  private async statPath(layer: string, path: string): Promise<BigIntStats | null> {
    const absolute = this.filePath(layer, path);
    let stats: BigIntStats;
    try {
      stats = await lstat(absolute, { bigint: true });
    } catch (error) {
      if (errnoCode(error) === "ENOENT" || errnoCode(error) === "ENOTDIR") return null;
      throw classifyFsError(error, `${layer}/${path}`);
    }
    if (stats.isDirectory()) return null;
    if (!stats.isFile()) {
      throw new TemplateInvalidError(
        `${layer}/${path} is ${kindOf(stats)}; only files are allowed`,
      );
    }
    try {
      await this.assertNoSymlinkOnTheWay(absolute, `${layer}/${path}`);
    } catch (error) {
      throw classifyFsError(error, `${layer}/${path}`);
    }
    return stats;
  }

  async statFile(
    layer: string,
    path: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<ReadFile | null> {
    assertLayerName(layer);
    assertObjectKey(path);
    options.signal?.throwIfAborted();
    const stats = await this.statPath(layer, path);
    return stats ? describe(path, stats) : null;
  }

  async readFile(layer: string, path: string, options: ReadOptions = {}): Promise<ReadResult> {
    assertLayerName(layer);
    assertObjectKey(path);
    const { signal } = options;
    signal?.throwIfAborted();
    const stats = await this.statPath(layer, path);
    if (!stats) throw new NotFoundError("file", `${layer}/${path}`);
    const file = describe(path, stats);
    if (options.ifNoneMatch !== undefined && options.ifNoneMatch === file.etag) {
      return { notModified: true };
    }
    if (options.ifMatch !== undefined && options.ifMatch !== file.etag) {
      throw new ConflictError(
        `${layer}/${path} changed (etag ${file.etag}, expected ${options.ifMatch})`,
      );
    }
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > file.size) {
      throw new ValidationError([
        { path: "offset", message: `must be between 0 and ${file.size}` },
      ]);
    }
    const absolute = this.filePath(layer, path);
    const what = `${layer}/${path}`;
    // The file is opened only when the body is read, so a body nobody reads
    // holds no descriptor. The inode is re-checked on open and at the end: a
    // rename in between (a publish) or an in-place edit is a CONFLICT, never a
    // silent mix of two versions.
    async function* body(): AsyncGenerator<Uint8Array> {
      let handle: Awaited<ReturnType<typeof open>>;
      try {
        handle = await open(
          absolute,
          constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
        );
      } catch (error) {
        throw classifyFsError(error, what);
      }
      try {
        if (etagOf(await handle.stat({ bigint: true })) !== file.etag) {
          throw new ConflictError(`${what} changed before it was read`);
        }
        let position = offset;
        while (position < file.size) {
          signal?.throwIfAborted();
          const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, file.size - position));
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
          if (bytesRead === 0) break;
          position += bytesRead;
          yield buffer.subarray(0, bytesRead);
        }
        if (position !== file.size || etagOf(await handle.stat({ bigint: true })) !== file.etag) {
          throw new ConflictError(`${what} changed while it was read`);
        }
      } finally {
        await handle.close();
      }
    }
    return { notModified: false, file, body: body() };
  }

  private async tmpDir(): Promise<string> {
    const dir = join(this.root, ".tmp");
    this.tmpReady ??= mkdir(dir, { recursive: true }).then(
      () => undefined,
      (error) => {
        this.tmpReady = null;
        throw error;
      },
    );
    await this.tmpReady;
    return dir;
  }

  /** Writes `body` to a temp file, checks size (and digest), then renames it to `target`. */
  private async writeAtomically(
    target: string,
    body: WriteBody,
    options: { size: number; mode: number; digest?: string; signal?: AbortSignal },
    what: string,
  ): Promise<BigIntStats> {
    const temp = join(await this.tmpDir(), randomUUID());
    let stats: BigIntStats;
    try {
      const handle = await open(temp, "wx", 0o600);
      try {
        const hash = options.digest?.startsWith("sha256:") ? createHash("sha256") : null;
        let written = 0;
        const chunks = body instanceof Uint8Array ? [body] : body();
        for await (const chunk of chunks) {
          options.signal?.throwIfAborted();
          written += chunk.length;
          if (written > options.size) break;
          hash?.update(chunk);
          await handle.write(chunk);
        }
        if (written !== options.size) {
          throw new ValidationError([
            {
              path: "size",
              message: `${what}: body ${written > options.size ? "is longer than" : `has ${written} bytes, not`} the declared ${options.size} bytes`,
            },
          ]);
        }
        if (hash && `sha256:${hash.digest("hex")}` !== options.digest) {
          throw new ValidationError([
            { path: "digest", message: `${what}: body does not match its digest` },
          ]);
        }
        await handle.chmod(options.mode);
        if (this.fsync) await handle.sync();
        stats = await handle.stat({ bigint: true });
      } finally {
        await handle.close();
      }
      const parent = target.slice(0, target.lastIndexOf(sep));
      await mkdir(parent, { recursive: true });
      await this.assertNoSymlinkOnTheWay(parent, what);
      await rename(temp, target);
    } catch (error) {
      await rm(temp, { force: true });
      throw classifyFsError(error, what);
    }
    return stats;
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
    checkSize(options?.size);
    const mode = checkMode(options.mode);
    options.signal?.throwIfAborted();
    const target = this.filePath(layer, path);
    const existing = await lstat(target).catch(() => null);
    if (existing && !existing.isFile()) {
      throw new ConflictError(`${layer}/${path} is ${kindOf(existing)}; cannot write a file there`);
    }
    const stats = await this.writeAtomically(
      target,
      body,
      {
        size: options.size,
        mode,
        ...(options.digest === undefined ? {} : { digest: options.digest }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      },
      `${layer}/${path}`,
    );
    return describe(path, stats);
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
    const stats = await this.statPath(layer, path);
    if (!stats) return;
    const absolute = this.filePath(layer, path);
    try {
      await unlink(absolute);
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return;
      throw classifyFsError(error, `${layer}/${path}`);
    }
    // Remove folders left empty, up to (not including) `layers/`: a layer
    // whose last file is deleted is gone, as in a bucket.
    const stop = join(this.root, "layers");
    let dir = absolute.slice(0, absolute.lastIndexOf(sep));
    while (dir.length > stop.length && dir.startsWith(stop + sep)) {
      try {
        await rmdir(dir);
      } catch {
        break; // not empty (or already gone): stop climbing
      }
      dir = dir.slice(0, dir.lastIndexOf(sep));
    }
  }

  async readTemplateDocument(
    name: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<string | null> {
    assertTemplateName(name);
    options.signal?.throwIfAborted();
    const path = this.documentPath(name);
    try {
      const stats = await lstat(path);
      if (!stats.isFile()) {
        throw new TemplateInvalidError(`templates/${name}/template.json is ${kindOf(stats)}`);
      }
      if (stats.size > MAX_TEMPLATE_DOCUMENT_BYTES) {
        throw new TemplateInvalidError(
          `templates/${name}/template.json is larger than ${MAX_TEMPLATE_DOCUMENT_BYTES} bytes`,
        );
      }
      await this.assertNoSymlinkOnTheWay(path, `templates/${name}/template.json`);
      return await readFile(path, {
        encoding: "utf8",
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (errnoCode(error) === "ENOENT" || errnoCode(error) === "ENOTDIR") return null;
      throw classifyFsError(error, `templates/${name}/template.json`);
    }
  }

  async writeTemplateDocument(
    name: string,
    json: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    this.writableOrThrow();
    const bytes = templateDocumentBytes(name, json);
    options.signal?.throwIfAborted();
    await this.writeAtomically(
      this.documentPath(name),
      bytes,
      { size: bytes.length, mode: 0o644, ...(options.signal ? { signal: options.signal } : {}) },
      `templates/${name}/template.json`,
    );
  }

  async listTemplates(options: { signal?: AbortSignal } = {}): Promise<string[]> {
    options.signal?.throwIfAborted();
    const names: string[] = [];
    // Folders whose path is a valid name and that hold a regular template.json;
    // anything else cannot be read back, so it is not listed.
    const walk = async (absolute: string, relative: string, depth: number): Promise<void> => {
      const entries = await readdir(absolute, { withFileTypes: true }).catch((error) => {
        if (errnoCode(error) === "ENOENT") return [];
        throw error;
      });
      for (const entry of entries) {
        if (entry.isFile() && entry.name === "template.json" && relative && isValidName(relative)) {
          names.push(relative);
        } else if (entry.isDirectory() && depth < MAX_NAME_SEGMENTS) {
          await walk(
            join(absolute, entry.name),
            relative ? `${relative}/${entry.name}` : entry.name,
            depth + 1,
          );
        }
      }
    };
    try {
      await walk(join(this.root, "templates"), "", 0);
    } catch (error) {
      throw classifyFsError(error, "templates");
    }
    return names.sort();
  }
}
