/**
 * Hostile layers and instance directories. Each case must end in a typed
 * error (or a harmless result) and leave every file outside the sandbox, and
 * the instance when it existed, exactly as it was: checked with sentinel files.
 */

// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${NAME} placeholders in plain strings are the subject of these tests
import { execFileSync } from "node:child_process";

import { link, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OrchestratorError } from "../../src/errors/orchestrator-error.js";
import { MANIFEST_FILE, type MergeLayersOptions, mergeLayers } from "../../src/templates/index.js";
import { checkVariables } from "../../src/variables/index.js";
import { sandbox, snapshot, writeTree } from "./fixtures.js";

let box: Awaited<ReturnType<typeof sandbox>>;
let sentinelBefore: Record<string, string>;
beforeEach(async () => {
  box = await sandbox();
  sentinelBefore = await box.sentinelSnapshot();
});
afterEach(async () => {
  expect(await box.sentinelSnapshot()).toEqual(sentinelBefore);
  await box.cleanup();
});

async function rejected(options: MergeLayersOptions): Promise<OrchestratorError> {
  const error = await mergeLayers(options).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!OrchestratorError.isInstance(error))
    throw new Error(`expected a typed error, got ${String(error)}`);
  return error;
}

/** A fresh merge of a bad layer: TEMPLATE_INVALID naming the path, and no instance created. */
async function expectLayerRejected(
  layer: string,
  path: string,
  reason: RegExp,
  extra: Partial<MergeLayersOptions> = {},
) {
  const error = await rejected({ layers: [layer], target: box.target, ...extra });
  expect(error.code).toBe("TEMPLATE_INVALID");
  expect(error.details).toMatchObject({ path });
  expect(String(error.details.reason)).toMatch(reason);
  await expect(readFile(join(box.target, "ok.txt"))).rejects.toThrow(/ENOENT/);
}

describe("hostile layers", () => {
  it("rejects a symlink pointing out of the layer", async () => {
    const layer = await box.layer("evil", { "ok.txt": "ok" });
    await symlink(join(box.sentinel, "secret.txt"), join(layer, "leak.txt"));
    await expectLayerRejected(layer, "leak.txt", /symbolic link/);
  });

  it("rejects chains of symlinks and symlinked directories, even when they stay inside", async () => {
    const layer = await box.layer("evil", { "ok.txt": "ok", "real/file": "x" });
    await symlink("real", join(layer, "alias"));
    await symlink("alias", join(layer, "chain"));
    await expectLayerRejected(layer, "alias", /symbolic link/);
    await rm(join(layer, "alias"));
    await expectLayerRejected(layer, "chain", /symbolic link/);
  });

  it("rejects a layer folder that is itself a symlink", async () => {
    const real = await box.layer("real", { "ok.txt": "ok" });
    await symlink(real, join(box.root, "layers", "linked"));
    const error = await rejected({
      layers: [join(box.root, "layers", "linked")],
      target: box.target,
    });
    expect(error.code).toBe("TEMPLATE_INVALID");
  });

  it("rejects FIFOs and sockets", async () => {
    const layer = await box.layer("evil", { "ok.txt": "ok" });
    execFileSync("mkfifo", [join(layer, "pipe")]);
    await expectLayerRejected(layer, "pipe", /FIFO/);
    await rm(join(layer, "pipe"));
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(layer, "sock"), resolve));
    try {
      await expectLayerRejected(layer, "sock", /socket/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("rejects device files", async (context) => {
    const layer = await box.layer("evil", { "ok.txt": "ok" });
    try {
      execFileSync("mknod", [join(layer, "null"), "c", "1", "3"], { stdio: "ignore" });
    } catch {
      context.skip("mknod is not permitted here (needs CAP_MKNOD)");
    }
    await expectLayerRejected(layer, "null", /device/);
  });

  it("rejects hardlinks inside a layer, even under the link policy", async () => {
    const layer = await box.layer("evil", { "ok.txt": "ok", "a.jar": "x" });
    await link(join(layer, "a.jar"), join(layer, "b.jar"));
    await expectLayerRejected(layer, "b.jar", /hard link to a\.jar/, {
      files: { link: ["*.jar"] },
    });
  });

  it("rejects names that collide after case folding or Unicode normalisation", async () => {
    const layer = await box.layer("evil", { "ok.txt": "ok", "Config.yml": "a", "config.yml": "b" });
    await expectLayerRejected(layer, "config.yml", /collides with Config\.yml/);
    await rm(join(layer, "Config.yml"));
    await writeTree(layer, { "caf\u00e9": "nfc", "cafe\u0301": "nfd" });
    await expectLayerRejected(layer, "caf\u00e9", /collides/);
    await rm(join(layer, "cafe\u0301"));
    await writeTree(layer, { STRASSE: "a", straße: "b" });
    await expectLayerRejected(layer, "straße", /collides with STRASSE/);
  });

  it("rejects a case-only twin of a lower layer's file", async () => {
    const lower = await box.layer("lower", { "README.md": "a" });
    const upper = await box.layer("upper", { "readme.md": "b" });
    const error = await rejected({ layers: [lower, upper], target: box.target });
    expect(error.message).toBe(
      "layer upper: readme.md collides with README.md from a lower layer (differs only in case or normalisation)",
    );
  });

  it("rejects control characters, bidi overrides, invisible characters and non-UTF-8 names", async () => {
    for (const name of [
      "new\nline",
      "tab\there",
      "evil\u202Etxt.exe",
      "zero\u200Bwidth",
      "bell\u0007",
    ]) {
      const layer = await box.layer(`evil-${name.length}-${name.codePointAt(4)}`, {
        "ok.txt": "ok",
        [name]: "x",
      });
      const error = await rejected({ layers: [layer], target: box.target });
      expect(error.code).toBe("TEMPLATE_INVALID");
      expect(String(error.details.reason)).toMatch(/control character|bidirectional/);
    }
    const layer = await box.layer("latin1", { "ok.txt": "ok" });
    await writeFile(
      Buffer.concat([Buffer.from(`${layer}/caf`), Buffer.from([0xe9])]),
      "latin-1 name",
    );
    const error = await rejected({ layers: [layer], target: box.target });
    expect(error.details.reason).toBe("is not valid UTF-8");
  });

  it("caps entries, depth, name and path length", async () => {
    const many: Record<string, string> = { "ok.txt": "ok" };
    for (let i = 0; i < 150; i += 1) many[`f${i}`] = "";
    const wide = await box.layer("wide", many);
    const entries = await rejected({
      layers: [wide],
      target: box.target,
      limits: { maxEntries: 100 },
    });
    expect(entries.message).toMatch(/over 100 entries/);

    const deep = await box.layer("deep", { [`${"d/".repeat(40)}f`]: "x" });
    const depth = await rejected({ layers: [deep], target: box.target });
    expect(depth.message).toMatch(/nests deeper than 32 directories/);

    const long = await box.layer("long", { ["n".repeat(60)]: "x" });
    const name = await rejected({
      layers: [long],
      target: box.target,
      limits: { maxNameBytes: 50 },
    });
    expect(name.details.reason).toMatch(/longer than 50 bytes/);
    const path = await rejected({
      layers: [deep],
      target: box.target,
      limits: { maxPathBytes: 20 },
    });
    expect(path.details.reason).toMatch(/path longer than 20 bytes/);
  });

  it("rejects malformed whiteouts and the reserved manifest name", async () => {
    const layer = await box.layer("evil", { "ok.txt": "ok", ".wh.dir/": "" });
    await expectLayerRejected(layer, ".wh.dir", /whiteout marker but not a file/);
    await rm(join(layer, ".wh.dir"), { recursive: true });
    await writeFile(join(layer, ".wh..wh.other"), "");
    await expectLayerRejected(layer, ".wh..wh.other", /reserved whiteout prefix/);
    await rm(join(layer, ".wh..wh.other"));
    await writeFile(join(layer, ".ORCH-MANIFEST.json"), "{}");
    await expectLayerRejected(layer, ".ORCH-MANIFEST.json", /reserved/);
  });

  it("refuses globs that are absolute or climb out of the instance", async () => {
    const layer = await box.layer("app", { "ok.txt": "ok" });
    for (const files of [
      { substitute: ["../**"] },
      { link: ["/etc/**"] },
      { merge: { "a/../../b": "json" as const } },
    ]) {
      const error = await rejected({ layers: [layer], target: box.target, files });
      expect(error.code).toBe("TEMPLATE_INVALID");
    }
  });

  it("strips setuid/setgid instead of rejecting them", async () => {
    const layer = await box.layer("suid", { run: { content: "x", mode: 0o4755 }, "dir/": "" });
    const result = await mergeLayers({ layers: [layer], target: box.target });
    expect(result.manifest.entries.find((e) => e.path === "run")?.mode).toBe(0o755);
    expect((await snapshot(box.target)).run).toBe("file 755 x");
  });
});

describe("hostile instance directories", () => {
  const layerSpec = { "config/server.yml": "port: 1", "plugins/a.jar": "a", "ok.txt": "ok" };

  it("refuses to write a file through a symlink planted where the template has a file", async () => {
    const layer = await box.layer("app", layerSpec);
    await mergeLayers({ layers: [layer], target: box.target });
    await rm(join(box.target, "config/server.yml"));
    await symlink(join(box.sentinel, "secret.txt"), join(box.target, "config/server.yml"));
    const before = await snapshot(box.target);
    const error = await rejected({ layers: [layer], target: box.target });
    expect(error.code).toBe("CONFLICT");
    expect(error.details).toMatchObject({ path: "config/server.yml" });
    expect(await snapshot(box.target)).toEqual(before);
  });

  it("refuses a symlinked directory where the template has a directory", async () => {
    const layer = await box.layer("app", layerSpec);
    await mergeLayers({ layers: [layer], target: box.target });
    await rm(join(box.target, "plugins"), { recursive: true });
    await symlink(join(box.sentinel, "nested"), join(box.target, "plugins"));
    const error = await rejected({ layers: [layer], target: box.target });
    expect(error.code).toBe("CONFLICT");
    expect(error.details).toMatchObject({ path: "plugins" });
  });

  it("refuses a target that is a symlink", async () => {
    const layer = await box.layer("app", layerSpec);
    await mkdir(join(box.root, "instances"), { recursive: true });
    await symlink(box.sentinel, box.target);
    const error = await rejected({ layers: [layer], target: box.target });
    expect(error.code).toBe("CONFLICT");
  });

  it("never deletes through a tampered manifest: traversal paths or symlinked directories", async () => {
    const layer = await box.layer("app", { ...layerSpec, "data/keep.txt": "k" });
    await mergeLayers({ layers: [layer], target: box.target });

    // 1. A manifest listing paths outside the instance is not trusted at all.
    const manifestPath = join(box.target, MANIFEST_FILE);
    const manifest = JSON.parse(await readFile(manifestPath, "utf8"));
    const tampered = structuredClone(manifest);
    tampered.entries.push({
      path: "../../sentinel/secret.txt",
      kind: "file",
      layer: "app",
      mode: 420,
      size: 1,
    });
    await writeFile(manifestPath, JSON.stringify(tampered));
    await mergeLayers({ layers: [layer], target: box.target });

    // 2. An owned directory swapped for a symlink: dropping it must not follow the link.
    await writeFile(
      manifestPath,
      JSON.stringify({
        ...manifest,
        entries: [
          ...manifest.entries,
          { path: "nested/keep.txt", kind: "file", layer: "app", mode: 420, size: 7 },
        ],
      }),
    );
    await symlink(join(box.sentinel, "nested"), join(box.target, "nested"));
    await mergeLayers({ layers: [layer], target: box.target });
    expect(await readFile(join(box.sentinel, "nested/keep.txt"), "utf8")).toBe("keep me");
  });

  it("treats variable values as data: shell metacharacters, placeholders and newlines land literally", async () => {
    const layer = await box.layer("app", { "motd.txt": "${MOTD}|${RULES}|${OTHER}" });
    const check = checkVariables(
      {
        MOTD: { type: "string" },
        RULES: { type: "string", multiline: true },
        OTHER: { type: "string" },
      },
      { MOTD: "$(touch /tmp/pwned) `id`; ${OTHER} $${X}", RULES: "a\nb", OTHER: "o" },
    );
    if (!check.ok) throw new Error("unexpected");
    await mergeLayers({
      layers: [layer],
      target: box.target,
      files: { substitute: ["*.txt"] },
      variables: check.variables,
    });
    expect(await readFile(join(box.target, "motd.txt"), "utf8")).toBe(
      "$(touch /tmp/pwned) `id`; ${OTHER} $${X}|a\nb|o",
    );
    // A quote cannot leave a JSON string; a line break cannot start a .properties entry.
    await writeTree(join(box.root, "layers", "app"), {
      "config.json": '{"motd": "${MOTD}", "admin": false}',
      "server.properties": "rules=${RULES}\nadmin=false\n",
    });
    const injected = checkVariables(
      { MOTD: { type: "string" }, RULES: { type: "string", multiline: true } },
      { MOTD: 'x", "admin": true, "y": "', RULES: "a\nadmin=true" },
    );
    if (!injected.ok) throw new Error("unexpected");
    const target = join(box.root, "instances", "i-2");
    await mergeLayers({
      layers: [layer],
      target,
      files: { substitute: ["*.json", "*.properties"] },
      variables: injected.variables,
    });
    expect(JSON.parse(await readFile(join(target, "config.json"), "utf8"))).toEqual({
      motd: 'x", "admin": true, "y": "',
      admin: false,
    });
    expect(await readFile(join(target, "server.properties"), "utf8")).toBe(
      "rules=a\\nadmin=true\nadmin=false\n",
    );
    const newline = checkVariables({ MOTD: { type: "string" } }, { MOTD: "a\nb" });
    expect(newline).toEqual({
      ok: false,
      issues: [{ path: "variables.MOTD", message: "must be a single line" }],
    });
  });
});
