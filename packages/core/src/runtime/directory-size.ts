import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

/** Result of `directorySize`. */
export interface DirectorySize {
  /** Bytes allocated on disk (each hardlinked file counted once). */
  bytes: number;
  /** Entries visited. */
  entries: number;
  /** True when the walk stopped at `maxEntries` (then `bytes` is a lower bound). */
  truncated: boolean;
}

/**
 * Disk usage of a directory tree, for `RuntimeStats.diskBytes`: symlinks are
 * not followed, hardlinks (template files shared by `link`) count once, and
 * the walk is bounded so a huge instance directory cannot stall the agent.
 */
export async function directorySize(
  root: string,
  options: { maxEntries?: number; signal?: AbortSignal } = {},
): Promise<DirectorySize> {
  const maxEntries = options.maxEntries ?? 100_000;
  const seen = new Set<string>();
  const pending = [root];
  let bytes = 0;
  let entries = 0;
  while (pending.length > 0) {
    options.signal?.throwIfAborted();
    const path = pending.pop()!;
    let info: Awaited<ReturnType<typeof lstat>>;
    try {
      info = await lstat(path);
    } catch {
      continue; // deleted while we walked: not an error for a usage figure
    }
    entries += 1;
    const inode = `${info.dev}:${info.ino}`;
    if (info.nlink > 1 && !info.isDirectory()) {
      if (seen.has(inode)) continue;
      seen.add(inode);
    }
    bytes += info.blocks !== undefined ? Number(info.blocks) * 512 : Number(info.size);
    if (entries >= maxEntries) return { bytes, entries, truncated: true };
    if (info.isDirectory()) {
      const names = await readdir(path).catch(() => [] as string[]);
      for (const name of names) pending.push(join(path, name));
    }
  }
  return { bytes, entries, truncated: false };
}
