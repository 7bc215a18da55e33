/**
 * Publishing a local folder as a layer: upload only what changed, delete what
 * was removed. "Changed" is decided without trusting timestamps: sizes, modes
 * (when the storage lists them), then the digest the storage vouches for
 * (S3's MD5 ETag), and otherwise the stored bytes themselves are hashed.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mapLimit } from "../cache/concurrency.js";
import { ConflictError, ForbiddenError, OrchestratorError } from "../errors/orchestrator-error.js";
import {
  type StoredFile,
  type TemplateStorage,
  templateStorageCapabilities,
} from "../ports/template-storage.js";
import { assertLayerName } from "../template-document/names.js";
import {
  type LocalLayerFile,
  type ScanLayerFolderOptions,
  scanLayerFolder,
} from "./scan-layer-folder.js";

export interface PublishLayerOptions extends Omit<ScanLayerFolderOptions, "maxFileBytes"> {
  signal?: AbortSignal;
  /** Uploads, deletes and comparisons in parallel. Default 8. */
  concurrency?: number;
  /** Work out what would change, change nothing. */
  dryRun?: boolean;
}

export interface PublishLayerResult {
  layer: string;
  /** Files and bytes of the layer as published. */
  files: number;
  bytes: number;
  /** Paths uploaded (new or changed). */
  uploaded: string[];
  /** Paths deleted from the storage (no longer in the folder). */
  deleted: string[];
  /** Files already up to date. */
  unchanged: number;
  bytesUploaded: number;
  dryRun: boolean;
}

/** What `publishLayer` will do; made before anything is written. */
export interface LayerPublishPlan {
  storage: TemplateStorage;
  layer: string;
  files: LocalLayerFile[];
  upload: (LocalLayerFile & { sha256: string })[];
  /** Deleted first: remote files in the way of a new file or folder of the same name. */
  deleteFirst: string[];
  deleteAfter: string[];
  unchanged: number;
}

async function hashLocal(path: string, algorithms: readonly string[], signal?: AbortSignal) {
  const hashes = algorithms.map((algorithm) => createHash(algorithm));
  for await (const chunk of createReadStream(path, signal ? { signal } : {})) {
    for (const hash of hashes) hash.update(chunk as Buffer);
  }
  return hashes.map((hash) => hash.digest("hex"));
}

async function hashStored(
  storage: TemplateStorage,
  layer: string,
  file: StoredFile,
  signal?: AbortSignal,
): Promise<string> {
  const result = await storage.readFile(layer, file.path, {
    ifMatch: file.etag,
    ...(signal ? { signal } : {}),
  });
  if (result.notModified) throw new OrchestratorError("INTERNAL", "unexpected notModified");
  const hash = createHash("sha256");
  for await (const chunk of result.body) hash.update(chunk);
  return hash.digest("hex");
}

async function listOrEmpty(
  storage: TemplateStorage,
  layer: string,
  signal?: AbortSignal,
): Promise<StoredFile[]> {
  try {
    return await storage.listLayer(layer, signal ? { signal } : {});
  } catch (error) {
    if (OrchestratorError.hasCode(error, "NOT_FOUND")) return [];
    throw error;
  }
}

/**
 * A layer name must not be a parent of another (`base` and `base/app`): in a
 * bucket the parent's listing would include the child's files, and publishing
 * the parent would delete them. Refused here for the ancestors of `layer`.
 */
async function assertNoParentLayer(
  storage: TemplateStorage,
  layer: string,
  signal?: AbortSignal,
): Promise<void> {
  const segments = layer.split("/");
  for (let i = 1; i < segments.length; i++) {
    const parent = segments.slice(0, i).join("/");
    const below = `${segments.slice(i).join("/")}/`;
    const files = await listOrEmpty(storage, parent, signal);
    if (files.some((file) => !file.path.startsWith(below))) {
      throw new ConflictError(
        `layer '${parent}' exists, so '${layer}' cannot be published: layer names cannot nest`,
        { details: { layer, parent } },
      );
    }
  }
}

/** Scans `dir`, compares it with the stored layer and returns what publishing would do. */
export async function planLayerPublish(
  storage: TemplateStorage,
  dir: string,
  layer: string,
  options: PublishLayerOptions = {},
): Promise<LayerPublishPlan> {
  assertLayerName(layer);
  const capabilities = templateStorageCapabilities(storage);
  if (!capabilities.writable) throw new ForbiddenError("the template storage is read-only");
  const { signal } = options;
  const files = await scanLayerFolder(dir, { ...options, maxFileBytes: capabilities.maxFileBytes });
  signal?.throwIfAborted();
  await assertNoParentLayer(storage, layer, signal);
  const remote = new Map(
    (await listOrEmpty(storage, layer, signal)).map((file) => [file.path, file]),
  );

  const upload: LayerPublishPlan["upload"] = [];
  let unchanged = 0;
  await mapLimit(files, options.concurrency ?? 8, async (file) => {
    const stored = remote.get(file.path);
    const vouched = stored?.digest?.match(/^(sha256|md5):([0-9a-f]+)$/);
    const algorithms = vouched?.[1] === "md5" ? ["sha256", "md5"] : ["sha256"];
    const [sha256, md5] = await hashLocal(file.absolute, algorithms, signal);
    const same =
      stored !== undefined &&
      stored.size === file.size &&
      (stored.mode === undefined || stored.mode === file.mode) &&
      (vouched
        ? vouched[2] === (vouched[1] === "md5" ? md5 : sha256)
        : (await hashStored(storage, layer, stored, signal)) === sha256);
    if (same) unchanged += 1;
    else upload.push({ ...file, sha256: sha256 as string });
  });
  upload.sort((a, b) => (a.path < b.path ? -1 : 1));

  const localPaths = new Set(files.map((file) => file.path));
  const localFolders = new Set<string>();
  for (const file of files) {
    const segments = file.path.split("/");
    for (let i = 1; i < segments.length; i++) localFolders.add(segments.slice(0, i).join("/"));
  }
  const deleteFirst: string[] = [];
  const deleteAfter: string[] = [];
  for (const path of [...remote.keys()].sort()) {
    if (localPaths.has(path)) continue;
    const segments = path.split("/");
    const blocksNewFile = segments.some(
      (_, i) => i > 0 && localPaths.has(segments.slice(0, i).join("/")),
    );
    if (localFolders.has(path) || blocksNewFile) deleteFirst.push(path);
    else deleteAfter.push(path);
  }
  return { storage, layer, files, upload, deleteFirst, deleteAfter, unchanged };
}

/** Carries out a plan: clashing deletes, uploads, then the remaining deletes. */
export async function executeLayerPublish(
  plan: LayerPublishPlan,
  options: { signal?: AbortSignal; concurrency?: number; dryRun?: boolean } = {},
): Promise<PublishLayerResult> {
  const { storage, layer, signal } = { ...plan, signal: options.signal };
  const concurrency = options.concurrency ?? 8;
  const signalOption = signal ? { signal } : {};
  if (!options.dryRun) {
    await mapLimit(plan.deleteFirst, concurrency, (path) =>
      storage.deleteFile(layer, path, signalOption),
    );
    await mapLimit(plan.upload, concurrency, (file) =>
      storage.writeFile(
        layer,
        file.path,
        () => createReadStream(file.absolute, signalOption) as AsyncIterable<Uint8Array>,
        { size: file.size, mode: file.mode, digest: `sha256:${file.sha256}`, ...signalOption },
      ),
    );
    await mapLimit(plan.deleteAfter, concurrency, (path) =>
      storage.deleteFile(layer, path, signalOption),
    );
  }
  return {
    layer,
    files: plan.files.length,
    bytes: plan.files.reduce((sum, file) => sum + file.size, 0),
    uploaded: plan.upload.map((file) => file.path),
    deleted: [...plan.deleteFirst, ...plan.deleteAfter].sort(),
    unchanged: plan.unchanged,
    bytesUploaded: plan.upload.reduce((sum, file) => sum + file.size, 0),
    dryRun: options.dryRun ?? false,
  };
}

/**
 * Publishes the folder `dir` as layer `layer`: uploads new and changed files,
 * deletes files no longer there. Refuses (VALIDATION_FAILED, listing every
 * entry) symlinks, devices, FIFOs, sockets and unsafe names before writing
 * anything; FORBIDDEN on a read-only storage.
 */
export async function publishLayer(
  storage: TemplateStorage,
  dir: string,
  layer: string,
  options: PublishLayerOptions = {},
): Promise<PublishLayerResult> {
  const plan = await planLayerPublish(storage, dir, layer, options);
  return executeLayerPublish(plan, options);
}
