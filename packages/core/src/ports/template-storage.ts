import type { Plugin } from "./plugin.js";

/** One file of a layer as the storage lists it. */
export interface StoredFile {
  /** Path inside the layer, `/`-separated; always passes `objectKeyProblem` (never absolute, no `..`). */
  path: string;
  /** Size in bytes. */
  size: number;
  /**
   * Version tag (S3 ETag without quotes, or a stat-based tag for folders).
   * Changes whenever the content does; equal tags mean equal content.
   */
  etag: string;
  /**
   * POSIX permission bits (e.g. 0o755 for executables). Absent in listings of
   * storages that cannot list them cheaply (S3); always present on reads.
   */
  mode?: number;
  /**
   * A digest of the content the storage vouches for without reading it,
   * as `sha256:<hex>` or `md5:<hex>`; absent when it knows none.
   */
  digest?: string;
  /** When the content was last written. */
  modifiedAt: Date;
}

/** A file as a read returns it: the mode is always known. */
export interface ReadFile extends StoredFile {
  /** POSIX permission bits (0o644 when the storage keeps none). */
  mode: number;
}

export interface ReadOptions {
  /** Aborts the request and the body stream. */
  signal?: AbortSignal;
  /** Answer `{ notModified: true }` instead of the body when the etag still matches. */
  ifNoneMatch?: string;
  /**
   * Fail with CONFLICT unless the current etag equals this one, so a reader
   * never mixes two versions of an object (a re-publish during a download).
   */
  ifMatch?: string;
  /** Start at this byte (resume an interrupted download). Needs `capabilities.rangedReads`. */
  offset?: number;
}

export type ReadResult =
  | { notModified: true }
  | {
      notModified: false;
      /** The object that is streamed (`size` is its full size, whatever `offset`). */
      file: ReadFile;
      /** The bytes from `offset` (0) to the end; consume it or call `return()` on its iterator. */
      body: AsyncIterable<Uint8Array>;
    };

/**
 * The content of a write: bytes, or a factory of streams so the storage can
 * retry the upload from the start.
 */
export type WriteBody = Uint8Array | (() => AsyncIterable<Uint8Array>);

export interface WriteOptions {
  /** Exact size of the body; a body of another size is refused (VALIDATION_FAILED), nothing stored. */
  size: number;
  /** POSIX permission bits to keep (default 0o644). */
  mode?: number;
  /** `sha256:<hex>` of the body when the caller knows it; stored by storages that keep metadata. */
  digest?: string;
  signal?: AbortSignal;
}

/** Declared abilities of a storage; absent ones take `DEFAULT_TEMPLATE_STORAGE_CAPABILITIES`. */
export interface TemplateStorageCapabilities {
  /** Accepts `writeFile`, `deleteFile` and `writeTemplateDocument` (publishing); read-only otherwise. */
  writable: boolean;
  /** Honours `ReadOptions.offset`, so interrupted downloads resume instead of restarting. */
  rangedReads: boolean;
  /** Largest single file `writeFile` accepts, in bytes; null when unlimited. */
  maxFileBytes: number | null;
}

/** What a storage that declares nothing can do: read whole files. */
export const DEFAULT_TEMPLATE_STORAGE_CAPABILITIES: TemplateStorageCapabilities = Object.freeze({
  writable: false,
  rangedReads: false,
  maxFileBytes: null,
});

/** A storage's capabilities with the defaults filled in. */
export function templateStorageCapabilities(storage: TemplateStorage): TemplateStorageCapabilities {
  return { ...DEFAULT_TEMPLATE_STORAGE_CAPABILITIES, ...storage.capabilities };
}

/**
 * Where template layers and `template.json` documents live (a folder, a bucket).
 * Layer `L` is the folder `layers/L/`; template `T`'s document is
 * `templates/T/template.json`. Names are checked with `nameProblem`, paths with
 * `objectKeyProblem`: invalid ones fail with VALIDATION_FAILED before any I/O,
 * and stored keys that break the rules fail with TEMPLATE_INVALID (never
 * normalised or skipped). Expected failures are `OrchestratorError`s:
 * NOT_FOUND, CONFLICT, UNAVAILABLE (retryable), FORBIDDEN, UNAUTHORIZED.
 * Implementations: run `describeTemplateStorageConformance` from
 * `@orchestrator/core/testing`.
 */
export interface TemplateStorage extends Plugin {
  /** Declared abilities; read them through `templateStorageCapabilities(storage)`. */
  readonly capabilities?: Partial<TemplateStorageCapabilities>;

  /**
   * Every file of a layer (all pages), in no particular order. A layer exists
   * while it holds at least one file: an unknown or empty layer is NOT_FOUND.
   */
  listLayer(layer: string, options?: { signal?: AbortSignal }): Promise<StoredFile[]>;

  /** One file's metadata (mode included), or null when absent. */
  statFile(
    layer: string,
    path: string,
    options?: { signal?: AbortSignal },
  ): Promise<ReadFile | null>;

  /** Streams one file of a layer; NOT_FOUND when absent. */
  readFile(layer: string, path: string, options?: ReadOptions): Promise<ReadResult>;

  /** Writes one file of a layer atomically (readers see the old or the new content). Requires `writable`. */
  writeFile(
    layer: string,
    path: string,
    body: WriteBody,
    options: WriteOptions,
  ): Promise<StoredFile>;

  /** Deletes one file of a layer; deleting a missing file is not an error. Requires `writable`. */
  deleteFile(layer: string, path: string, options?: { signal?: AbortSignal }): Promise<void>;

  /** Reads a template's `template.json` (raw JSON text), or null when absent. */
  readTemplateDocument(name: string, options?: { signal?: AbortSignal }): Promise<string | null>;

  /** Writes a template's `template.json` atomically. Requires `writable`. */
  writeTemplateDocument(
    name: string,
    json: string,
    options?: { signal?: AbortSignal },
  ): Promise<void>;

  /** Names of the templates that have a `template.json`, sorted (only names that pass `nameProblem`: others cannot be read back). */
  listTemplates(options?: { signal?: AbortSignal }): Promise<string[]>;
}
