/**
 * An append-only JSON-lines file that survives crashes: appends are single
 * writes of whole lines (flushed with fdatasync), a torn last line from a crash
 * is ignored on load, and rewrites go through a temporary file + rename.
 */
import { open, readFile, rename, writeFile } from "node:fs/promises";

export async function readJsonLines<T>(path: string): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const entries: T[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      entries.push(JSON.parse(line) as T);
    } catch {
      // A torn write from a crash: everything before it is intact.
      break;
    }
  }
  return entries;
}

export async function appendJsonLines(path: string, entries: readonly unknown[]): Promise<void> {
  if (entries.length === 0) return;
  const handle = await open(path, "a", 0o600);
  try {
    await handle.write(entries.map((entry) => `${JSON.stringify(entry)}\n`).join(""));
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

export async function rewriteJsonLines(path: string, entries: readonly unknown[]): Promise<void> {
  const temporary = `${path}.tmp`;
  await writeFile(temporary, entries.map((entry) => `${JSON.stringify(entry)}\n`).join(""), {
    mode: 0o600,
  });
  await rename(temporary, path);
}
