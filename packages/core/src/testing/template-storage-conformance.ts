/**
 * The one conformance suite every `TemplateStorage` runs (folder, S3, yours):
 *
 *   describeTemplateStorageConformance("MyStorage", async () => ({
 *     storage: new MyStorage(...),
 *     cleanup: async () => { ... },
 *   }));
 *
 * Each test gets a fresh, empty, writable storage from the factory. Imports
 * vitest, so it is only reachable through `@orchestrator/core/testing`.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OrchestratorError } from "../errors/orchestrator-error.js";
import {
  type ReadResult,
  type StoredFile,
  type TemplateStorage,
  templateStorageCapabilities,
} from "../ports/template-storage.js";

export interface TemplateStorageFixture {
  /** A fresh, empty, writable storage. */
  storage: TemplateStorage;
  /** Removes what the test wrote (a temp dir, a bucket prefix). */
  cleanup?: () => Promise<void>;
}

export interface TemplateStorageConformanceOptions {
  /** Skips the whole suite with this visible reason (e.g. the S3 service is not configured). */
  skip?: string | null;
  /**
   * Files written to check that listings return every page (default 25). Make
   * the storage's page size smaller than this in the factory.
   */
  paginationFiles?: number;
}

const text = (value: string) => new TextEncoder().encode(value);

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function readAll(result: ReadResult): Promise<Buffer> {
  if (result.notModified) throw new Error("expected a body, got notModified");
  return collect(result.body);
}

function byPath(files: StoredFile[]): StoredFile[] {
  return [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function digestMatches(digest: string, content: Buffer): boolean {
  const [algorithm, hex] = digest.split(":");
  if (algorithm !== "sha256" && algorithm !== "md5") return false;
  return createHash(algorithm).update(content).digest("hex") === hex;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  let caught: unknown = null;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected an OrchestratorError with code ${code}`).not.toBeNull();
  expect(OrchestratorError.isInstance(caught), String(caught)).toBe(true);
  expect((caught as OrchestratorError).code).toBe(code);
}

/** Registers the `TemplateStorage` conformance tests for one implementation. */
export function describeTemplateStorageConformance(
  name: string,
  factory: () => TemplateStorageFixture | Promise<TemplateStorageFixture>,
  options: TemplateStorageConformanceOptions = {},
): void {
  const suite = options.skip ? describe.skip : describe;
  suite(`TemplateStorage conformance: ${name}`, () => {
    let fixture: TemplateStorageFixture;
    let storage: TemplateStorage;

    beforeEach(async () => {
      fixture = await factory();
      storage = fixture.storage;
      await storage.init?.();
    });

    afterEach(async () => {
      await storage.destroy?.();
      await fixture.cleanup?.();
    });

    const write = (layer: string, path: string, content: Uint8Array | string, mode?: number) => {
      const bytes = typeof content === "string" ? text(content) : content;
      return storage.writeFile(layer, path, bytes, {
        size: bytes.length,
        ...(mode === undefined ? {} : { mode }),
      });
    };

    it("declares its capabilities and is writable for the suite", () => {
      const capabilities = templateStorageCapabilities(storage);
      expect(typeof capabilities.rangedReads).toBe("boolean");
      expect(capabilities.writable).toBe(true);
    });

    it("reports an unknown layer as NOT_FOUND and a missing file as null / NOT_FOUND", async () => {
      await expectCode(storage.listLayer("missing"), "NOT_FOUND");
      await expectCode(storage.readFile("missing", "a.txt"), "NOT_FOUND");
      expect(await storage.statFile("missing", "a.txt")).toBeNull();
      await write("present", "a.txt", "a");
      await expectCode(storage.readFile("present", "b.txt"), "NOT_FOUND");
      expect(await storage.statFile("present", "b.txt")).toBeNull();
    });

    it("lists written files with sizes, etags, modes and dates", async () => {
      const before = Date.now() - 5 * 60_000; // tolerate clock skew with a remote server
      const written = [
        await write("base/app", "server.js", "console.log(1)"),
        await write("base/app", "config/empty.txt", ""),
        await write("base/app", "bin/start.sh", "#!/bin/sh\n", 0o755),
      ];
      for (const file of written) expect(file.etag).toMatch(/\S/);
      const files = byPath(await storage.listLayer("base/app"));
      expect(files.map((f) => [f.path, f.size])).toEqual([
        ["bin/start.sh", 10],
        ["config/empty.txt", 0],
        ["server.js", 14],
      ]);
      for (const file of files) {
        expect(file.etag).toMatch(/\S/);
        expect(file.modifiedAt).toBeInstanceOf(Date);
        expect(file.modifiedAt.getTime()).toBeGreaterThan(before);
        const same = written.find((w) => w.path === file.path);
        expect(file.etag).toBe(same?.etag);
      }
      const script = files.find((f) => f.path === "bin/start.sh");
      if (script?.mode !== undefined) expect(script.mode).toBe(0o755);
      expect(new Set(files.map((f) => f.etag)).size).toBe(3);
    });

    it("reads back the exact bytes, the mode and the listed etag", async () => {
      const binary = randomBytes(300 * 1024 + 7);
      await write("bin", "data/blob.bin", binary);
      await write("bin", "run.sh", "#!/bin/sh\necho hi\n", 0o755);
      await write("bin", "empty", "");
      const listed = new Map((await storage.listLayer("bin")).map((f) => [f.path, f]));

      const blob = await storage.readFile("bin", "data/blob.bin");
      expect(blob.notModified).toBe(false);
      if (blob.notModified) return;
      expect((await collect(blob.body)).equals(binary)).toBe(true);
      expect(blob.file.size).toBe(binary.length);
      expect(blob.file.etag).toBe(listed.get("data/blob.bin")?.etag);
      expect(blob.file.mode).toBe(0o644);
      if (blob.file.digest !== undefined)
        expect(digestMatches(blob.file.digest, binary)).toBe(true);

      const script = await storage.readFile("bin", "run.sh");
      if (script.notModified) throw new Error("unexpected notModified");
      expect((await collect(script.body)).toString()).toBe("#!/bin/sh\necho hi\n");
      expect(script.file.mode).toBe(0o755);

      expect((await readAll(await storage.readFile("bin", "empty"))).length).toBe(0);

      const stat = await storage.statFile("bin", "run.sh");
      expect(stat).toMatchObject({ path: "run.sh", size: 18, mode: 0o755 });
      expect(stat?.etag).toBe(listed.get("run.sh")?.etag);
    });

    it("writes from a stream factory", async () => {
      const parts = ["hello ", "from ", "a stream"];
      const size = parts.join("").length;
      async function* body() {
        for (const part of parts) yield text(part);
      }
      const stored = await storage.writeFile("streamed", "s.txt", body, { size });
      expect(stored.size).toBe(size);
      expect((await readAll(await storage.readFile("streamed", "s.txt"))).toString()).toBe(
        "hello from a stream",
      );
    });

    it("refuses a body whose size differs from the declared size and keeps the old content", async () => {
      await write("sized", "f.txt", "original");
      await expectCode(
        storage.writeFile("sized", "f.txt", text("longer than declared"), { size: 3 }),
        "VALIDATION_FAILED",
      );
      async function* short() {
        yield text("ab");
      }
      await expectCode(
        storage.writeFile("sized", "f.txt", short, { size: 10 }),
        "VALIDATION_FAILED",
      );
      await expectCode(
        storage.writeFile("sized", "new.txt", text("abc"), { size: 4 }),
        "VALIDATION_FAILED",
      );
      expect((await readAll(await storage.readFile("sized", "f.txt"))).toString()).toBe("original");
      expect((await storage.listLayer("sized")).map((f) => f.path)).toEqual(["f.txt"]);
    });

    it("overwrites a file and changes its etag", async () => {
      const first = await write("over", "f.txt", "version 1");
      const second = await write("over", "f.txt", "version 2 is longer");
      expect(second.etag).not.toBe(first.etag);
      const [listed] = await storage.listLayer("over");
      expect(listed).toMatchObject({ path: "f.txt", size: 19, etag: second.etag });
      expect((await readAll(await storage.readFile("over", "f.txt"))).toString()).toBe(
        "version 2 is longer",
      );
    });

    it("answers conditional reads (If-None-Match, If-Match)", async () => {
      const first = await write("cond", "f.txt", "one");
      expect(await storage.readFile("cond", "f.txt", { ifNoneMatch: first.etag })).toEqual({
        notModified: true,
      });
      const matched = await storage.readFile("cond", "f.txt", { ifMatch: first.etag });
      expect((await readAll(matched)).toString()).toBe("one");

      const second = await write("cond", "f.txt", "two!");
      const changed = await storage.readFile("cond", "f.txt", { ifNoneMatch: first.etag });
      expect(changed.notModified).toBe(false);
      if (!changed.notModified) expect(changed.file.etag).toBe(second.etag);
      expect((await readAll(changed)).toString()).toBe("two!");
      await expectCode(storage.readFile("cond", "f.txt", { ifMatch: first.etag }), "CONFLICT");
    });

    it("reads from an offset when it declares ranged reads", async () => {
      if (!templateStorageCapabilities(storage).rangedReads) return;
      const content = randomBytes(70_000);
      const stored = await write("ranged", "r.bin", content);
      const tail = await storage.readFile("ranged", "r.bin", {
        offset: 65_536,
        ifMatch: stored.etag,
      });
      if (tail.notModified) throw new Error("unexpected notModified");
      expect(tail.file.size).toBe(70_000);
      expect((await collect(tail.body)).equals(content.subarray(65_536))).toBe(true);
      expect(
        (await readAll(await storage.readFile("ranged", "r.bin", { offset: 70_000 }))).length,
      ).toBe(0);
    });

    it("deletes files; a layer without files no longer exists", async () => {
      await write("del", "a.txt", "a");
      await write("del", "dir/b.txt", "b");
      await storage.deleteFile("del", "a.txt");
      await storage.deleteFile("del", "a.txt"); // missing: not an error
      await storage.deleteFile("del", "never/was.txt");
      expect((await storage.listLayer("del")).map((f) => f.path)).toEqual(["dir/b.txt"]);
      await storage.deleteFile("del", "dir/b.txt");
      await expectCode(storage.listLayer("del"), "NOT_FOUND");
    });

    it("keeps layers apart, including names that share a prefix", async () => {
      await write("a", "one.txt", "1");
      await write("ab", "two.txt", "2");
      await write("a-b", "three.txt", "3");
      await write("b/a", "four.txt", "4");
      expect((await storage.listLayer("a")).map((f) => f.path)).toEqual(["one.txt"]);
      expect((await storage.listLayer("ab")).map((f) => f.path)).toEqual(["two.txt"]);
      expect((await storage.listLayer("b/a")).map((f) => f.path)).toEqual(["four.txt"]);
    });

    it("lists every page of a large layer", async () => {
      const count = options.paginationFiles ?? 25;
      const paths = Array.from({ length: count }, (_, i) => `f/${String(i).padStart(4, "0")}.txt`);
      for (let i = 0; i < paths.length; i += 8) {
        await Promise.all(paths.slice(i, i + 8).map((path) => write("paged", path, path)));
      }
      const listed = byPath(await storage.listLayer("paged"));
      expect(listed.map((f) => f.path)).toEqual(paths);
    });

    it("refuses invalid names and paths with VALIDATION_FAILED", async () => {
      const body = text("x");
      const writeOptions = { size: 1 };
      await expectCode(storage.listLayer("Bad"), "VALIDATION_FAILED");
      await expectCode(storage.listLayer("a/../b"), "VALIDATION_FAILED");
      await expectCode(storage.readFile("ok", "../escape"), "VALIDATION_FAILED");
      await expectCode(storage.statFile("ok", "a/./b"), "VALIDATION_FAILED");
      await expectCode(storage.writeFile("ok", "/abs", body, writeOptions), "VALIDATION_FAILED");
      await expectCode(storage.writeFile("ok", "a\\b", body, writeOptions), "VALIDATION_FAILED");
      await expectCode(
        storage.writeFile("ok", "a\u0001b", body, writeOptions),
        "VALIDATION_FAILED",
      );
      await expectCode(storage.writeFile("ok", "dir/", body, writeOptions), "VALIDATION_FAILED");
      await expectCode(storage.writeFile("../ok", "a", body, writeOptions), "VALIDATION_FAILED");
      await expectCode(storage.deleteFile("ok", "a//b"), "VALIDATION_FAILED");
      await expectCode(storage.readTemplateDocument("UPPER"), "VALIDATION_FAILED");
      await expectCode(storage.writeTemplateDocument("a..b", "{}"), "VALIDATION_FAILED");
      await expectCode(storage.listLayer("ok"), "NOT_FOUND"); // nothing was written
    });

    it("stores template documents", async () => {
      expect(await storage.readTemplateDocument("hello")).toBeNull();
      expect(await storage.listTemplates()).toEqual([]);
      await storage.writeTemplateDocument("hello", '{"name":"hello"}');
      await storage.writeTemplateDocument("games/minecraft", '{"name":"games/minecraft"}');
      await storage.writeTemplateDocument("hello", '{"name":"hello","v":2}');
      expect(await storage.readTemplateDocument("hello")).toBe('{"name":"hello","v":2}');
      expect(await storage.readTemplateDocument("games/minecraft")).toBe(
        '{"name":"games/minecraft"}',
      );
      expect(await storage.listTemplates()).toEqual(["games/minecraft", "hello"]);
      // Documents and layers live apart: a template named like a layer is fine.
      await write("hello", "index.html", "<h1>hi</h1>");
      expect(await storage.listTemplates()).toEqual(["games/minecraft", "hello"]);
    });

    it("rejects when its signal is already aborted", async () => {
      await write("sig", "a.txt", "a");
      const controller = new AbortController();
      controller.abort();
      const signal = controller.signal;
      await expect(storage.listLayer("sig", { signal })).rejects.toMatchObject({
        name: "AbortError",
      });
      await expect(storage.readFile("sig", "a.txt", { signal })).rejects.toMatchObject({
        name: "AbortError",
      });
      await expect(
        storage.writeFile("sig", "b.txt", text("b"), { size: 1, signal }),
      ).rejects.toMatchObject({ name: "AbortError" });
      expect((await storage.listLayer("sig")).map((f) => f.path)).toEqual(["a.txt"]);
    });
  });
}
