import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OrchestratorError } from "@orchestrator/core";
import { describeTemplateStorageConformance } from "@orchestrator/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FolderTemplateStorage } from "../src/index.js";

const scratch: string[] = [];
async function tempRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "orch-storage-fs-"));
  scratch.push(dir);
  return dir;
}

describeTemplateStorageConformance("FolderTemplateStorage", async () => {
  const root = await tempRoot();
  return {
    storage: new FolderTemplateStorage({ root, fsync: false }),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

async function codeOf(promise: Promise<unknown>): Promise<string | null> {
  try {
    await promise;
    return null;
  } catch (error) {
    return OrchestratorError.isInstance(error) ? error.code : `not an OrchestratorError: ${error}`;
  }
}

async function text(storage: FolderTemplateStorage, layer: string, path: string) {
  const result = await storage.readFile(layer, path);
  if (result.notModified) throw new Error("unexpected notModified");
  const chunks: Buffer[] = [];
  for await (const chunk of result.body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString();
}

describe("FolderTemplateStorage specifics", () => {
  let root: string;
  let storage: FolderTemplateStorage;

  beforeEach(async () => {
    root = await tempRoot();
    storage = new FolderTemplateStorage({ root, fsync: false });
    await storage.init();
  });

  afterEach(async () => {
    await Promise.all(scratch.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("reads a folder laid out by hand (rsync, cp) and lists every file", async () => {
    await mkdir(join(root, "layers/base/node-app/lib"), { recursive: true });
    await writeFile(join(root, "layers/base/node-app/server.js"), "x");
    await writeFile(join(root, "layers/base/node-app/lib/util.js"), "yy");
    await chmod(join(root, "layers/base/node-app/server.js"), 0o755);
    const files = await storage.listLayer("base/node-app");
    expect(files.map((f) => [f.path, f.size, f.mode]).sort()).toEqual([
      ["lib/util.js", 2, 0o644],
      ["server.js", 1, 0o755],
    ]);
  });

  it("refuses symlinks, FIFOs and badly named entries, listing every one", async () => {
    const layer = join(root, "layers/evil");
    await mkdir(join(layer, "sub"), { recursive: true });
    await writeFile(join(layer, "ok.txt"), "ok");
    await symlink("/etc/passwd", join(layer, "passwd"));
    await symlink("..", join(layer, "sub/up"));
    execFileSync("mkfifo", [join(layer, "pipe")]);
    await writeFile(join(layer, "back\\slash"), "x");
    await writeFile(join(layer, "bell\u0007"), "x");
    let caught: unknown;
    try {
      await storage.listLayer("evil");
    } catch (error) {
      caught = error;
    }
    expect(OrchestratorError.hasCode(caught, "TEMPLATE_INVALID")).toBe(true);
    const issues = (caught as OrchestratorError).details.issues as { path: string }[];
    expect(issues.map((i) => i.path).sort()).toEqual(
      ["back\\slash", "bell\u0007", "passwd", "pipe", "sub/up"].sort(),
    );
    expect(await codeOf(storage.readFile("evil", "passwd"))).toBe("TEMPLATE_INVALID");
    expect(await codeOf(storage.readFile("evil", "pipe"))).toBe("TEMPLATE_INVALID");
  });

  it("refuses a layer or a parent folder reached through a symlink", async () => {
    const elsewhere = await tempRoot();
    await writeFile(join(elsewhere, "secret.txt"), "secret");
    await mkdir(join(root, "layers"), { recursive: true });
    await symlink(elsewhere, join(root, "layers/linked"));
    expect(await codeOf(storage.listLayer("linked"))).toBe("TEMPLATE_INVALID");
    expect(await codeOf(storage.readFile("linked", "secret.txt"))).toBe("TEMPLATE_INVALID");
    await mkdir(join(root, "layers/real"), { recursive: true });
    await symlink(elsewhere, join(root, "layers/real/dir"));
    expect(await codeOf(storage.readFile("real", "dir/secret.txt"))).toBe("TEMPLATE_INVALID");
    expect(
      await codeOf(storage.writeFile("real", "dir/new.txt", Buffer.from("x"), { size: 1 })),
    ).toBe("TEMPLATE_INVALID");
    expect(await readdir(elsewhere)).toEqual(["secret.txt"]);
  });

  it("never lists in-flight temp files and removes stale ones on init", async () => {
    await storage.writeFile("l", "a.txt", Buffer.from("a"), { size: 1 });
    const stale = join(root, ".tmp", "crashed-writer");
    const fresh = join(root, ".tmp", "in-flight");
    await writeFile(stale, "partial");
    await writeFile(fresh, "partial");
    await utimes(stale, new Date(0), new Date(0));
    expect((await storage.listLayer("l")).map((f) => f.path)).toEqual(["a.txt"]);
    await new FolderTemplateStorage({ root }).init();
    expect(await readdir(join(root, ".tmp"))).toEqual(["in-flight"]);
  });

  it("keeps a reader on the version it started with when a file is replaced", async () => {
    const big = Buffer.alloc(1024 * 1024, "a");
    await storage.writeFile("l", "big.bin", big, { size: big.length });
    const result = await storage.readFile("l", "big.bin");
    if (result.notModified) throw new Error("unexpected");
    const iterator = result.body[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);
    // A publish replaces the file (new inode) while the download is running.
    const replaced = Buffer.alloc(1024 * 1024, "b");
    await storage.writeFile("l", "big.bin", replaced, { size: replaced.length });
    // The reader opened its descriptor at the first chunk: it reads the old inode
    // to the end, consistently, while new readers get the new content.
    let total = (first.value as Uint8Array).length;
    let allA = Buffer.from(first.value as Uint8Array).every((byte) => byte === 0x61);
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      total += next.value.length;
      allA &&= Buffer.from(next.value).every((byte) => byte === 0x61);
    }
    expect(total).toBe(big.length);
    expect(allA).toBe(true);
    expect(await text(storage, "l", "big.bin")).toBe(replaced.toString());
  });

  it("fails with CONFLICT when a file changes before or while it is read", async () => {
    await storage.writeFile("l", "f.txt", Buffer.from("one"), { size: 3 });
    const before = await storage.readFile("l", "f.txt");
    if (before.notModified) throw new Error("unexpected");
    await storage.writeFile("l", "f.txt", Buffer.from("two"), { size: 3 });
    expect(
      await codeOf(
        (async () => {
          for await (const _ of before.body);
        })(),
      ),
    ).toBe("CONFLICT");

    const big = Buffer.alloc(600 * 1024, "a");
    await storage.writeFile("l", "edited.bin", big, { size: big.length });
    const during = await storage.readFile("l", "edited.bin");
    if (during.notModified) throw new Error("unexpected");
    const drain = (async () => {
      let index = 0;
      for await (const _ of during.body) {
        // An in-place edit (not our atomic write) while the download runs.
        if (index++ === 0)
          await writeFile(join(root, "layers/l/edited.bin"), Buffer.alloc(600 * 1024, "c"));
      }
    })();
    expect(await codeOf(drain)).toBe("CONFLICT");
  });

  it("changes the etag on chmod, and keeps no setuid bits", async () => {
    const stored = await storage.writeFile("l", "run.sh", Buffer.from("#!/bin/sh"), {
      size: 9,
      mode: 0o4755,
    });
    expect(stored.mode).toBe(0o755);
    await chmod(join(root, "layers/l/run.sh"), 0o700);
    const [listed] = await storage.listLayer("l");
    expect(listed?.mode).toBe(0o700);
    expect(listed?.etag).not.toBe(stored.etag);
  });

  it("is read-only when asked, and refuses every write with FORBIDDEN", async () => {
    await storage.writeFile("l", "a.txt", Buffer.from("a"), { size: 1 });
    const readOnly = new FolderTemplateStorage({ root, readOnly: true });
    await readOnly.init();
    expect(readOnly.capabilities.writable).toBe(false);
    expect(await codeOf(readOnly.writeFile("l", "b.txt", Buffer.from("b"), { size: 1 }))).toBe(
      "FORBIDDEN",
    );
    expect(await codeOf(readOnly.deleteFile("l", "a.txt"))).toBe("FORBIDDEN");
    expect(await codeOf(readOnly.writeTemplateDocument("t", "{}"))).toBe("FORBIDDEN");
    expect((await readOnly.listLayer("l")).map((f) => f.path)).toEqual(["a.txt"]);
    expect(
      await codeOf(new FolderTemplateStorage({ root: join(root, "nope"), readOnly: true }).init()),
    ).toBe("NOT_FOUND");
  });

  it("refuses to write a file where a folder is, and prunes empty folders on delete", async () => {
    await storage.writeFile("l", "dir/deep/f.txt", Buffer.from("f"), { size: 1 });
    await storage.writeFile("l", "keep.txt", Buffer.from("k"), { size: 1 });
    expect(await codeOf(storage.writeFile("l", "dir", Buffer.from("x"), { size: 1 }))).toBe(
      "CONFLICT",
    );
    await storage.deleteFile("l", "dir/deep/f.txt");
    expect(await readdir(join(root, "layers/l"))).toEqual(["keep.txt"]);
    await storage.deleteFile("l", "keep.txt");
    expect(await readdir(join(root, "layers"))).toEqual([]);
  });
});
