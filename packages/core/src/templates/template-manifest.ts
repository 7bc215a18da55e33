/**
 * The manifest of a merged instance: every path the template owns, where it
 * came from, its size, mode and policy. It is returned by `mergeLayers` (for
 * later steps and the panel) and stored in the instance as
 * `.orch-manifest.json`, which is how a re-prepare knows which files are the
 * template's (updated) and which are not (kept: worlds, logs, uploads).
 */
import { lstat, readFile } from "node:fs/promises";
import { join } from "node:path";
import { relativePathProblem } from "./entry-name.js";
import type { PlacementMethod } from "./file-copier.js";

/** File name of the stored manifest at the instance root (reserved: no layer may ship it). */
export const MANIFEST_FILE = ".orch-manifest.json";

export type FilePolicyName = "copy" | "link" | "merge";

export interface ManifestEntry {
  /** NFC, `/`-separated, relative to the instance root. */
  path: string;
  kind: "file" | "directory";
  /** The top-most layer this path comes from. */
  layer: string;
  /** Permission bits in the instance (setuid/setgid/sticky stripped). */
  mode: number;
  /** Bytes in the instance (0 for directories). */
  size: number;
  /** Files: the policy the template chose for this path. */
  policy?: FilePolicyName;
  /** Files: how it landed (`write` when produced by substitution or a structured merge). */
  method?: PlacementMethod;
  /** Files: variables were substituted in it. */
  substituted?: boolean;
  /** Structured merges: every layer merged, bottom first. */
  mergedFrom?: string[];
  /** Opaque: identity of the source version(s), to skip unchanged files on re-prepare. */
  source?: string;
  /** Substituted files: the variables referenced (known or not), sorted. */
  uses?: string[];
  /** Opaque: digest of the values of `uses`. */
  variables?: string;
  /** Hardlinked files: the shared inode, to notice a replaced file. */
  inode?: number;
}

export interface TemplateManifest {
  format: 1;
  /** Layer names, bottom first. */
  layers: string[];
  /** Sorted by path; directories before their contents. */
  entries: ManifestEntry[];
}

/** Largest manifest file read back (a tampered, huge file is treated as absent). */
const MAX_MANIFEST_BYTES = 256 * 1024 ** 2;

function isEntry(value: unknown): value is ManifestEntry {
  if (typeof value !== "object" || value === null) return false;
  const entry = value as Record<string, unknown>;
  return (
    typeof entry.path === "string" &&
    relativePathProblem(entry.path) === undefined &&
    (entry.kind === "file" || entry.kind === "directory") &&
    typeof entry.layer === "string" &&
    Number.isInteger(entry.mode) &&
    Number.isSafeInteger(entry.size) &&
    (entry.source === undefined || typeof entry.source === "string") &&
    (entry.variables === undefined || typeof entry.variables === "string") &&
    (entry.uses === undefined ||
      (Array.isArray(entry.uses) && entry.uses.every((name) => typeof name === "string"))) &&
    (entry.inode === undefined || typeof entry.inode === "number")
  );
}

/**
 * Reads the manifest an earlier merge stored in `targetDir`, with the change
 * time of the manifest file (files written by that merge are not newer).
 * The instance's server can write this file, so anything malformed counts as
 * "no manifest" (every file is then treated as not owned: nothing is deleted).
 */
export async function readTemplateManifest(
  targetDir: string,
): Promise<{ manifest: TemplateManifest; ctimeMs: number } | undefined> {
  const file = join(targetDir, MANIFEST_FILE);
  try {
    const stat = await lstat(file);
    if (!stat.isFile() || stat.size > MAX_MANIFEST_BYTES) return undefined;
    const parsed = JSON.parse(await readFile(file, "utf8")) as Partial<TemplateManifest>;
    if (
      parsed.format !== 1 ||
      !Array.isArray(parsed.layers) ||
      !Array.isArray(parsed.entries) ||
      !parsed.entries.every(isEntry)
    ) {
      return undefined;
    }
    return { manifest: parsed as TemplateManifest, ctimeMs: stat.ctimeMs };
  } catch {
    return undefined;
  }
}
