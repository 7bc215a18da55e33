/**
 * The cache's on-disk record of one layer: which generation folder is current
 * and what each file is (storage etag, size, digest, and the stat identity of
 * the local copy). Writing `current.json` (temp file + rename) is the commit
 * point of a sync: before it the new generation does not exist for anyone.
 */
import { randomUUID } from "node:crypto";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isValidName, objectKeyProblem } from "../template-document/names.js";

/** What the cache knows about one cached file. */
export interface ManifestFile {
  /** The storage's etag when it was downloaded. */
  etag: string;
  size: number;
  /** `sha256:<hex>` or `md5:<hex>` of the content, computed while downloading. */
  digest: string;
  /** Permission bits applied to the local copy. */
  mode: number;
  /** Local copy's mtime (ns) and inode, to notice a cached file being changed. */
  mtimeNs: string;
  ino: string;
}

export interface LayerManifest {
  format: 1;
  layer: string;
  /** Name of the folder holding this version's files. */
  generation: string;
  syncedAt: string;
  /** Sum of the files' sizes. */
  bytes: number;
  files: Record<string, ManifestFile>;
}

export const MANIFEST_FILE = "current.json";

const GENERATION_PATTERN = /^g[0-9a-z]+-[0-9a-f]{8}$/;

/** A new, unique generation folder name. */
export function newGeneration(now: Date): string {
  return `g${now.getTime().toString(36)}-${randomUUID().slice(0, 8)}`;
}

/** Folder name of a layer inside the cache (`base/node-app` → `base%2Fnode-app`). */
export function encodeLayer(layer: string): string {
  return encodeURIComponent(layer);
}

/** The layer a cache folder name stands for, or null when it is not one of ours. */
export function decodeLayer(folder: string): string | null {
  try {
    const layer = decodeURIComponent(folder);
    return isValidName(layer) && encodeLayer(layer) === folder ? layer : null;
  } catch {
    return null;
  }
}

function isManifestFile(value: unknown): value is ManifestFile {
  if (typeof value !== "object" || value === null) return false;
  const file = value as Record<string, unknown>;
  return (
    typeof file.etag === "string" &&
    Number.isSafeInteger(file.size) &&
    (file.size as number) >= 0 &&
    typeof file.digest === "string" &&
    /^(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})$/.test(file.digest) &&
    Number.isInteger(file.mode) &&
    typeof file.mtimeNs === "string" &&
    typeof file.ino === "string"
  );
}

/**
 * Reads and checks a layer's manifest; null when missing or not trustworthy
 * (then the layer is treated as not cached and its folder is removed).
 */
export async function readManifest(layerDir: string, layer: string): Promise<LayerManifest | null> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(join(layerDir, MANIFEST_FILE), "utf8"));
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const manifest = value as Record<string, unknown>;
  if (
    manifest.format !== 1 ||
    manifest.layer !== layer ||
    typeof manifest.generation !== "string" ||
    !GENERATION_PATTERN.test(manifest.generation) ||
    typeof manifest.syncedAt !== "string" ||
    typeof manifest.files !== "object" ||
    manifest.files === null
  ) {
    return null;
  }
  let bytes = 0;
  for (const [path, file] of Object.entries(manifest.files)) {
    if (objectKeyProblem(path) !== null || !isManifestFile(file)) return null;
    bytes += file.size;
  }
  if (manifest.bytes !== bytes) return null;
  return manifest as unknown as LayerManifest;
}

/** Writes a manifest atomically: readers and a crash see the old one or the new one. */
export async function writeManifest(layerDir: string, manifest: LayerManifest): Promise<void> {
  const temp = join(layerDir, `${MANIFEST_FILE}.${randomUUID()}.tmp`);
  try {
    await writeFile(temp, JSON.stringify(manifest));
    await rename(temp, join(layerDir, MANIFEST_FILE));
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
