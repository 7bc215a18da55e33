/**
 * Reads a local folder that is about to become a layer, refusing everything a
 * layer may not hold (symlinks, devices, FIFOs, sockets, unsafe names): every
 * problem is reported at once, nothing is followed or normalised.
 */
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { ValidationError, type ValidationIssue } from "../errors/orchestrator-error.js";
import { objectKeyProblem } from "../template-document/names.js";

/** One regular file of a local layer folder. */
export interface LocalLayerFile {
  /** Path inside the layer, `/`-separated. */
  path: string;
  /** Absolute path on disk. */
  absolute: string;
  size: number;
  /** Permission bits (setuid/setgid/sticky dropped). */
  mode: number;
}

export interface ScanLayerFolderOptions {
  /** Leave out paths (files or whole folders) for which this returns true, e.g. `.git`. */
  ignore?: (path: string) => boolean;
  /** Most files accepted. Default 200,000. */
  maxFiles?: number;
  /** Most bytes in total. Default unlimited. */
  maxBytes?: number;
  /** Largest single file (the storage's limit). Default unlimited. */
  maxFileBytes?: number | null;
}

const MAX_ISSUES = 100;

/** Every file of `dir`, or a `ValidationError` listing every refused entry. */
export async function scanLayerFolder(
  dir: string,
  options: ScanLayerFolderOptions = {},
): Promise<LocalLayerFile[]> {
  const maxFiles = options.maxFiles ?? 200_000;
  const issues: ValidationIssue[] = [];
  const files: LocalLayerFile[] = [];
  const top = await lstat(dir).catch(() => null);
  if (!top?.isDirectory()) {
    throw new ValidationError([
      {
        path: dir,
        message: top?.isSymbolicLink() ? "is a symlink; symlinks are refused" : "is not a folder",
      },
    ]);
  }
  let bytes = 0;
  const walk = async (absolute: string, relative: string): Promise<void> => {
    const entries = await readdir(absolute, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      if (options.ignore?.(path)) continue;
      const problem = objectKeyProblem(path);
      if (problem) {
        issues.push({ path, message: problem });
        continue;
      }
      const child = join(absolute, entry.name);
      if (entry.isSymbolicLink()) {
        issues.push({ path, message: "is a symlink; symlinks are refused" });
      } else if (entry.isDirectory()) {
        await walk(child, path);
      } else if (!entry.isFile()) {
        issues.push({ path, message: "is a device, FIFO or socket; only files are allowed" });
      } else {
        const stats = await lstat(child);
        if (options.maxFileBytes != null && stats.size > options.maxFileBytes) {
          issues.push({
            path,
            message: `is larger than the storage's ${options.maxFileBytes}-byte limit`,
          });
        }
        bytes += stats.size;
        files.push({ path, absolute: child, size: stats.size, mode: stats.mode & 0o777 });
      }
      if (issues.length >= MAX_ISSUES) return;
    }
  };
  await walk(dir, "");
  if (files.length > maxFiles) {
    issues.push({ path: dir, message: `holds ${files.length} files, more than ${maxFiles}` });
  }
  if (options.maxBytes !== undefined && bytes > options.maxBytes) {
    issues.push({ path: dir, message: `holds ${bytes} bytes, more than ${options.maxBytes}` });
  }
  if (files.length === 0 && issues.length === 0) {
    issues.push({ path: dir, message: "holds no files (an empty layer cannot be stored)" });
  }
  if (issues.length) throw new ValidationError(issues);
  return files;
}
