/** Content hashes of every file under some folders: proves nothing outside a sandbox changed. */
import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";

export async function snapshot(roots: readonly string[]): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const root of roots) {
    const entries = await readdir(root, { recursive: true }).catch(() => [] as string[]);
    for (const entry of entries.sort()) {
      const path = join(root, entry);
      const info = await lstat(path);
      const mode = (info.mode & 0o7777).toString(8);
      if (info.isSymbolicLink()) result[path] = `link ${await readlink(path)}`;
      else if (info.isFile())
        result[path] = `file ${mode} ${createHash("sha256")
          .update(await readFile(path))
          .digest("hex")}`;
      else if (info.isDirectory()) result[path] = `dir ${mode}`;
      else result[path] = `special ${mode}`;
    }
  }
  return result;
}
