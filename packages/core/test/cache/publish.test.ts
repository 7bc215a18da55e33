import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { publishLayer, publishTemplate, TemplateCache } from "../../src/cache/index.js";
import { OrchestratorError, ValidationError } from "../../src/errors/orchestrator-error.js";
import { parseTemplateDocument } from "../../src/template-document/index.js";
import { MemoryTemplateStorage } from "./memory-template-storage.js";

let work: string;
let storage: MemoryTemplateStorage;

async function tree(root: string, files: Record<string, string>): Promise<string> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  return root;
}

function stored(layer: string): Record<string, string> {
  return Object.fromEntries(
    [...(storage.layers.get(layer) ?? new Map())].map(([path, entry]) => [
      path,
      entry.bytes.toString(),
    ]),
  );
}

async function codeOf(promise: Promise<unknown>): Promise<string | null> {
  try {
    await promise;
    return null;
  } catch (error) {
    return OrchestratorError.isInstance(error) ? error.code : `raw ${String(error)}`;
  }
}

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "orch-publish-"));
  storage = new MemoryTemplateStorage();
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("publishLayer", () => {
  it("uploads everything once, then only what changed, and deletes what was removed", async () => {
    const dir = await tree(join(work, "app"), {
      "server.js": "v1",
      "lib/a.js": "a",
      "lib/b.js": "b",
      "assets/logo.txt": "logo",
    });
    await chmod(join(dir, "server.js"), 0o755);
    const first = await publishLayer(storage, dir, "apps/hello");
    expect(first).toMatchObject({ files: 4, unchanged: 0, deleted: [], bytesUploaded: 8 });
    expect(first.uploaded).toEqual(["assets/logo.txt", "lib/a.js", "lib/b.js", "server.js"]);
    expect(storage.layers.get("apps/hello")?.get("server.js")?.mode).toBe(0o755);

    // Nothing changed: no upload. The listing carries no digest, so the stored
    // bytes are compared (hashed) instead of trusting timestamps.
    const writes = storage.calls.write;
    const again = await publishLayer(storage, dir, "apps/hello");
    expect(again).toMatchObject({ uploaded: [], deleted: [], unchanged: 4 });
    expect(storage.calls.write).toBe(writes);

    await writeFile(join(dir, "lib/a.js"), "A"); // same size, new content
    await rm(join(dir, "lib/b.js"));
    await chmod(join(dir, "assets/logo.txt"), 0o600); // mode only
    const changed = await publishLayer(storage, dir, "apps/hello");
    expect(changed.uploaded).toEqual(["assets/logo.txt", "lib/a.js"]);
    expect(changed.deleted).toEqual(["lib/b.js"]);
    expect(stored("apps/hello")).toEqual({
      "server.js": "v1",
      "lib/a.js": "A",
      "assets/logo.txt": "logo",
    });
  });

  it("trusts a digest the storage vouches for and reads nothing back", async () => {
    storage.listDigest = true;
    const dir = await tree(join(work, "app"), { "a.txt": "a", "b.txt": "b" });
    await publishLayer(storage, dir, "l");
    const reads = storage.calls.read;
    expect((await publishLayer(storage, dir, "l")).unchanged).toBe(2);
    expect(storage.calls.read).toBe(reads);
  });

  it("refuses symlinks, devices and unsafe names, listing every one, before writing anything", async () => {
    const dir = await tree(join(work, "evil"), {
      "ok.txt": "ok",
      "back\\slash": "x",
      "sub/fine.txt": "f",
    });
    await symlink("/etc/passwd", join(dir, "passwd"));
    await symlink("..", join(dir, "sub/up"));
    execFileSync("mkfifo", [join(dir, "pipe")]);
    let caught: unknown;
    try {
      await publishLayer(storage, dir, "evil");
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).issues).toEqual([
      { path: "back\\slash", message: "must not contain a backslash" },
      { path: "passwd", message: "is a symlink; symlinks are refused" },
      { path: "pipe", message: "is a device, FIFO or socket; only files are allowed" },
      { path: "sub/up", message: "is a symlink; symlinks are refused" },
    ]);
    expect(storage.calls.write).toBe(0);
    expect(await codeOf(publishLayer(storage, join(dir, "passwd"), "evil"))).toBe(
      "VALIDATION_FAILED",
    );
    expect(await codeOf(publishLayer(storage, join(work, "missing"), "evil"))).toBe(
      "VALIDATION_FAILED",
    );
    expect(await codeOf(publishLayer(storage, dir, "../escape"))).toBe("VALIDATION_FAILED");
  });

  it("leaves out ignored paths and empty folders are refused", async () => {
    const dir = await tree(join(work, "app"), { "a.txt": "a", ".git/HEAD": "ref", "b.tmp": "t" });
    const result = await publishLayer(storage, dir, "l", {
      ignore: (path) => path === ".git" || path.endsWith(".tmp"),
    });
    expect(result.uploaded).toEqual(["a.txt"]);
    await mkdir(join(work, "empty"));
    expect(await codeOf(publishLayer(storage, join(work, "empty"), "l"))).toBe("VALIDATION_FAILED");
  });

  it("plans without writing in a dry run", async () => {
    storage.put("l", "old.txt", "old");
    const dir = await tree(join(work, "app"), { "new.txt": "new" });
    const result = await publishLayer(storage, dir, "l", { dryRun: true });
    expect(result).toMatchObject({ dryRun: true, uploaded: ["new.txt"], deleted: ["old.txt"] });
    expect(stored("l")).toEqual({ "old.txt": "old" });
  });

  it("refuses a read-only storage and nested layer names", async () => {
    const dir = await tree(join(work, "app"), { "a.txt": "a" });
    const readOnly = Object.assign(Object.create(storage), { capabilities: { writable: false } });
    expect(await codeOf(publishLayer(readOnly, dir, "l"))).toBe("FORBIDDEN");
    storage.put("base", "own-file.txt", "x");
    expect(await codeOf(publishLayer(storage, dir, "base/app"))).toBe("CONFLICT");
    expect(stored("base/app")).toEqual({});
  });

  it("deletes a stored file first when a new folder takes its name", async () => {
    storage.put("l", "config", "was a file");
    const dir = await tree(join(work, "app"), { "config/server.properties": "motd=hi" });
    const result = await publishLayer(storage, dir, "l");
    expect(result.deleted).toEqual(["config"]);
    expect(stored("l")).toEqual({ "config/server.properties": "motd=hi" });
  });
});

const templateJson = {
  name: "hello-http",
  layers: ["base/node-app", "hello-http"],
  runtime: { process: { command: ["node", "server.js"] } },
  resources: { memoryMb: 128, cpu: 0.25, diskMb: 64 },
};

describe("publishTemplate", () => {
  it("publishes local layers, reuses stored ones, and writes template.json once", async () => {
    storage.put("base/node-app", "node-runtime.txt", "shared");
    const dir = await tree(join(work, "hello"), {
      "template.json": JSON.stringify(templateJson),
      "layers/hello-http/server.js": "http",
    });
    const result = await publishTemplate(storage, dir);
    expect(result).toMatchObject({
      name: "hello-http",
      reusedLayers: ["base/node-app"],
      documentChanged: true,
      digest: expect.stringMatching(/^sha256:/),
    });
    expect(result.layers.map((l) => [l.layer, l.uploaded])).toEqual([
      ["hello-http", ["server.js"]],
    ]);
    const document = await storage.readTemplateDocument("hello-http");
    expect(parseTemplateDocument(document)).toEqual(result.definition);

    const again = await publishTemplate(storage, dir);
    expect(again.documentChanged).toBe(false);
    expect(again.layers[0]?.uploaded).toEqual([]);
  });

  it("checks everything before writing anything", async () => {
    const dir = await tree(join(work, "bad"), {
      "template.json": JSON.stringify({ ...templateJson, layers: ["missing", "hello-http"] }),
      "layers/hello-http/ok.txt": "ok",
      "layers/hello-http/bad\\name": "x",
    });
    let caught: unknown;
    try {
      await publishTemplate(storage, dir);
    } catch (error) {
      caught = error;
    }
    expect((caught as ValidationError).issues).toEqual([
      {
        path: "layers[0]",
        message: `layer 'missing' has no folder ${join(dir, "layers/missing")} and is not in the storage`,
      },
      { path: "layers/hello-http/bad\\name", message: "must not contain a backslash" },
    ]);
    expect(storage.calls.write).toBe(0);
    expect(storage.documents.size).toBe(0);

    await writeFile(join(dir, "template.json"), JSON.stringify({ ...templateJson, name: "Bad" }));
    expect(await codeOf(publishTemplate(storage, dir))).toBe("TEMPLATE_INVALID");
    await rm(join(dir, "template.json"));
    expect(await codeOf(publishTemplate(storage, dir))).toBe("VALIDATION_FAILED");
  });

  it("round-trips through the cache byte for byte", async () => {
    const dir = await tree(join(work, "hello"), {
      "template.json": JSON.stringify({ ...templateJson, layers: ["hello-http"] }),
      "layers/hello-http/server.js": "http",
      "layers/hello-http/public/index.html": "<h1>hi</h1>",
    });
    await publishTemplate(storage, dir);
    const cache = new TemplateCache({ storage, dir: join(work, "cache") });
    const lease = await cache.acquire("hello-http");
    expect(lease.files).toBe(2);
    expect(lease.report.downloadedBytes).toBe(4 + 11);
    lease.release();
    await cache.destroy();
  });
});
