import type { Plugin } from "./plugin.js";

/** One file of a layer as the storage lists it. */
export interface StoredFile {
  /** Path inside the layer, `/`-separated, never absolute, never containing `..`. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** Version tag (S3 ETag or a content digest); changes whenever the content does. */
  etag: string;
  /** POSIX permission bits to apply (e.g. 0o755 for executables); 0o644 when unknown. */
  mode: number;
  modifiedAt: Date;
}

export interface ReadOptions {
  signal?: AbortSignal;
  /** Answer `{ notModified: true }` instead of the body when the etag still matches. */
  ifNoneMatch?: string;
}

export type ReadResult =
  | { notModified: true }
  | { notModified: false; file: StoredFile; body: AsyncIterable<Uint8Array> };

/** Declared abilities; a storage that cannot write is read-only (publishing is refused). */
export interface TemplateStorageCapabilities {
  writable: boolean;
}

export const DEFAULT_TEMPLATE_STORAGE_CAPABILITIES: TemplateStorageCapabilities = {
  writable: false,
};

/**
 * Where template layers and `template.json` documents live (a folder, a bucket).
 * Layer `L` is the folder `layers/L/`; template `T`'s document is
 * `templates/T/template.json`.
 */
export interface TemplateStorage extends Plugin {
  readonly capabilities: TemplateStorageCapabilities;

  /** Every file of a layer (all pages). An unknown layer yields NOT_FOUND. */
  listLayer(layer: string, options?: { signal?: AbortSignal }): Promise<StoredFile[]>;

  /** Streams one file of a layer. */
  readFile(layer: string, path: string, options?: ReadOptions): Promise<ReadResult>;

  /** Writes one file of a layer (publishing). Requires `capabilities.writable`. */
  writeFile(
    layer: string,
    path: string,
    body: AsyncIterable<Uint8Array>,
    options: { size: number; mode?: number; signal?: AbortSignal },
  ): Promise<StoredFile>;

  /** Deletes one file of a layer; deleting a missing file is not an error. */
  deleteFile(layer: string, path: string, options?: { signal?: AbortSignal }): Promise<void>;

  /** Reads a template's `template.json` (raw JSON text), or null when absent. */
  readTemplateDocument(name: string, options?: { signal?: AbortSignal }): Promise<string | null>;

  /** Writes a template's `template.json`. */
  writeTemplateDocument(
    name: string,
    json: string,
    options?: { signal?: AbortSignal },
  ): Promise<void>;

  /** Names of the templates that have a `template.json`. */
  listTemplates(options?: { signal?: AbortSignal }): Promise<string[]>;
}
