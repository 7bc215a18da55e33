/** Helpers to build layer folders and compare directory trees in template tests. */
import { createHash } from "node:crypto";
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** A file's content, or `{ content, mode }`; a path ending in `/` is a directory. */
export type TreeSpec = Record<string, string | Buffer | { content: string | Buffer; mode: number }>;

/** Writes `spec` under `root` (created). */
export async function writeTree(root: string, spec: TreeSpec): Promise<string> {
  await mkdir(root, { recursive: true });
  for (const [path, value] of Object.entries(spec)) {
    const absolute = join(root, path);
    if (path.endsWith("/")) {
      await mkdir(absolute, { recursive: true });
      continue;
    }
    await mkdir(dirname(absolute), { recursive: true });
    if (typeof value === "string" || Buffer.isBuffer(value)) await writeFile(absolute, value);
    else await writeFile(absolute, value.content, { mode: value.mode });
  }
  return root;
}

/**
 * Every entry under `root` as `path → description`: `dir`, `file <mode> <content>`
 * (content hashed when long or binary), `symlink → target`, or the entry type.
 */
export async function snapshot(root: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  const walk = async (relative: string) => {
    const names = (await readdir(join(root, relative))).sort();
    for (const name of names) {
      const path = relative ? `${relative}/${name}` : name;
      const absolute = join(root, path);
      const stat = await lstat(absolute);
      if (stat.isDirectory()) {
        result[`${path}/`] = `dir ${(stat.mode & 0o7777).toString(8)}`;
        await walk(path);
      } else if (stat.isSymbolicLink()) {
        result[path] = `symlink → ${await readlink(absolute)}`;
      } else if (stat.isFile()) {
        const content = await readFile(absolute);
        const text =
          content.length <= 200 && !content.includes(0)
            ? content.toString()
            : `sha256:${createHash("sha256").update(content).digest("hex").slice(0, 16)}`;
        result[path] = `file ${(stat.mode & 0o7777).toString(8)} ${text}`;
      } else {
        result[path] = "special";
      }
    }
  };
  await walk("");
  return result;
}

/** File contents only (`path → text`), ignoring modes, directories and the manifest. */
export async function fileContents(root: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const [path, description] of Object.entries(await snapshot(root))) {
    if (path === ".orch-manifest.json" || !description.startsWith("file ")) continue;
    result[path] = description.replace(/^file \d+ /, "");
  }
  return result;
}

/** A scratch folder with `layers/`, an instance parent and a sentinel folder outside both. */
export async function sandbox(): Promise<{
  root: string;
  layer: (name: string, spec: TreeSpec) => Promise<string>;
  target: string;
  sentinel: string;
  sentinelSnapshot: () => Promise<Record<string, string>>;
  cleanup: () => Promise<void>;
}> {
  const root = await mkdtemp(join(tmpdir(), "orch-merge-"));
  const sentinel = await writeTree(join(root, "sentinel"), {
    "secret.txt": "do not touch",
    "nested/keep.txt": "keep me",
  });
  return {
    root,
    layer: (name, spec) => writeTree(join(root, "layers", name), spec),
    target: join(root, "instances", "i-1"),
    sentinel,
    sentinelSnapshot: () => snapshot(sentinel),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}
