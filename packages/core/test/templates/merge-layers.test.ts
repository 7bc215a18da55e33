// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${NAME} placeholders in plain strings are the subject of these tests
import { link, lstat, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OrchestratorError } from "../../src/errors/orchestrator-error.js";
import { MANIFEST_FILE, mergeLayers } from "../../src/templates/index.js";
import { ResolvedVariables } from "../../src/variables/index.js";
import { fileContents, sandbox, snapshot } from "./fixtures.js";

let box: Awaited<ReturnType<typeof sandbox>>;
beforeEach(async () => {
  box = await sandbox();
});
afterEach(async () => {
  await box.cleanup();
});

async function failure(promise: Promise<unknown>): Promise<OrchestratorError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!OrchestratorError.isInstance(error))
    throw new Error(`expected an OrchestratorError, got ${String(error)}`);
  return error;
}

describe("mergeLayers", () => {
  it("applies layers bottom-up: a later file wins, the rest is kept", async () => {
    const base = await box.layer("base", {
      "server.jar": "jar v1",
      "config/a.yml": "a: base",
      "config/b.yml": "b: base",
      "start.sh": { content: "#!/bin/sh\n", mode: 0o755 },
    });
    const app = await box.layer("app", { "config/a.yml": "a: app", "plugins/p.jar": "plugin" });
    const result = await mergeLayers({ layers: [base, app], target: box.target });
    expect(await snapshot(box.target)).toMatchObject({
      "config/": "dir 755",
      "config/a.yml": "file 644 a: app",
      "config/b.yml": "file 644 b: base",
      "plugins/p.jar": "file 644 plugin",
      "server.jar": "file 644 jar v1",
      "start.sh": "file 755 #!/bin/sh\n",
    });
    expect(result.reprepared).toBe(false);
    expect(result.stats).toMatchObject({
      files: 5,
      directories: 2,
      written: 5,
      kept: 0,
      bytes: 35,
    });
    expect(result.manifest.layers).toEqual(["base", "app"]);
    expect(
      result.manifest.entries.map((e) => [e.path, e.kind, e.layer, e.size, e.mode, e.policy]),
    ).toEqual([
      ["config", "directory", "app", 0, 0o755, undefined],
      ["config/a.yml", "file", "app", 6, 0o644, "copy"],
      ["config/b.yml", "file", "base", 7, 0o644, "copy"],
      ["plugins", "directory", "app", 0, 0o755, undefined],
      ["plugins/p.jar", "file", "app", 6, 0o644, "copy"],
      ["server.jar", "file", "base", 6, 0o644, "copy"],
      ["start.sh", "file", "base", 10, 0o755, "copy"],
    ]);
    // The stored manifest is the returned one.
    expect(JSON.parse(await readFile(join(box.target, MANIFEST_FILE), "utf8"))).toEqual(
      result.manifest,
    );
  });

  it("honours whiteouts: a file, a whole directory, and an opaque directory", async () => {
    const base = await box.layer("base", {
      "a.txt": "a",
      "b.txt": "b",
      "mods/x.jar": "x",
      "mods/deep/y.jar": "y",
      "cfg/one": "1",
      "cfg/two": "2",
    });
    const top = await box.layer("top", {
      ".wh.a.txt": "",
      ".wh.mods": "",
      "cfg/.wh..wh..opq": "",
      "cfg/three": "3",
      // A whiteout only hides lower layers: this layer's own b.txt stays.
      ".wh.b.txt": "",
      "b.txt": "b2",
      // Whiteouts of names nobody has are no-ops.
      ".wh.nothing": "",
    });
    await mergeLayers({ layers: [base, top], target: box.target });
    expect(await fileContents(box.target)).toEqual({ "b.txt": "b2", "cfg/three": "3" });
    expect((await readdir(box.target)).sort()).toEqual([MANIFEST_FILE, "b.txt", "cfg"]);
  });

  it("lets a directory replace a file and a file replace a directory", async () => {
    const base = await box.layer("base", { logs: "a file", "data/inner.txt": "inner" });
    const top = await box.layer("top", { "logs/.keep": "", data: "now a file" });
    await mergeLayers({ layers: [base, top], target: box.target });
    expect(await fileContents(box.target)).toEqual({ "logs/.keep": "", data: "now a file" });
  });

  it("merges .properties, JSON and YAML key by key when the template opts in", async () => {
    const base = await box.layer("base", {
      "server.properties": "# base\nmotd=base\nmax-players=10\n",
      "config.json": '{\n  "a": 1,\n  "nested": { "x": 1, "y": 2 },\n  "list": [1, 2]\n}\n',
      "config.yml": "# comment kept\nserver:\n  port: 1\n  name: base\nlist: [1]\n",
      "only-base.yml": "untouched:   true\n",
    });
    const top = await box.layer("top", {
      "server.properties": "max-players=50\npvp=false\n",
      "config.json": '{ "nested": { "y": 3 }, "list": [9], "b": true }',
      "config.yml": "server:\n  port: 2\nextra: yes\n",
    });
    const result = await mergeLayers({
      layers: [base, top],
      target: box.target,
      files: {
        merge: { "server.properties": "properties", "*.json": "json", "*.yml": "yaml" },
      },
    });
    const files = await fileContents(box.target);
    expect(files["server.properties"]).toBe("# base\nmotd=base\nmax-players=50\npvp=false\n");
    expect(JSON.parse(files["config.json"]!)).toEqual({
      a: 1,
      nested: { x: 1, y: 3 },
      list: [9],
      b: true,
    });
    expect(files["config.yml"]).toBe(
      "# comment kept\nserver:\n  port: 2\n  name: base\nlist: [ 1 ]\nextra: yes\n",
    );
    // A file only one layer has is copied byte for byte, not re-serialised.
    expect(files["only-base.yml"]).toBe("untouched:   true\n");
    const entry = result.manifest.entries.find((e) => e.path === "config.yml");
    expect(entry).toMatchObject({
      policy: "merge",
      method: "write",
      mergedFrom: ["base", "top"],
      layer: "top",
    });
  });

  it("substitutes variables in selected files only, skipping binary files", async () => {
    const layer = await box.layer("app", {
      "motd.txt": "Hello ${NAME} on ${PORT}, $${NOT_A_VAR}",
      "script.sh": "echo ${HOME}",
      "data.bin": Buffer.concat([Buffer.from("${NAME}"), Buffer.alloc(4)]),
    });
    const result = await mergeLayers({
      layers: [layer],
      target: box.target,
      files: { substitute: ["*.txt", "*.bin"] },
      variables: { NAME: "world", PORT: "25565" },
    });
    const files = await snapshot(box.target);
    expect(files["motd.txt"]).toBe("file 644 Hello world on 25565, ${NOT_A_VAR}");
    expect(files["script.sh"]).toBe("file 644 echo ${HOME}");
    expect(await readFile(join(box.target, "data.bin"))).toEqual(
      Buffer.concat([Buffer.from("${NAME}"), Buffer.alloc(4)]),
    );
    expect(result.substitution).toMatchObject({
      files: 1,
      replacements: 2,
      binary: ["data.bin"],
      unknownCount: 0,
    });
    expect(result.manifest.entries.find((e) => e.path === "motd.txt")).toMatchObject({
      substituted: true,
      uses: ["NAME", "PORT"],
      method: "write",
    });
  });

  it("fails in strict mode listing path:line:column of every unknown variable, leaving nothing", async () => {
    const layer = await box.layer("app", {
      "a.txt": "ok ${NAME}\nbad ${MISSING}",
      "b/c.txt": "${ALSO_MISSING}",
      "big.jar": "x".repeat(1000),
    });
    const error = await failure(
      mergeLayers({
        layers: [layer],
        target: box.target,
        files: { substitute: ["**/*.txt"] },
        variables: { NAME: "n" },
      }),
    );
    expect(error.code).toBe("TEMPLATE_INVALID");
    expect(error.message).toBe(
      "unknown variables: a.txt:2:5 ${MISSING}, b/c.txt:1:1 ${ALSO_MISSING}",
    );
    await expect(lstat(box.target)).rejects.toThrow(/ENOENT/);
    // No staging directory left behind either.
    expect(await readdir(join(box.root, "instances"))).toEqual([]);
  });

  it("reports unknown variables and leaves them in non-strict mode", async () => {
    const layer = await box.layer("app", { "a.txt": "${MISSING}" });
    const result = await mergeLayers({
      layers: [layer],
      target: box.target,
      files: { substitute: ["*.txt"] },
      strict: false,
    });
    expect(await readFile(join(box.target, "a.txt"), "utf8")).toBe("${MISSING}");
    expect(result.substitution.unknown).toEqual([
      { source: "a.txt", line: 1, column: 1, name: "MISSING" },
    ]);
  });

  it("links files under the link policy (one inode with the layer) and copies the rest", async () => {
    const layer = await box.layer("app", {
      "libs/big.jar": "shared bytes",
      "config.txt": "own copy",
    });
    const result = await mergeLayers({
      layers: [layer],
      target: box.target,
      files: { link: ["**/*.jar"] },
    });
    const source = await stat(join(layer, "libs/big.jar"));
    const linked = await stat(join(box.target, "libs/big.jar"));
    const method = result.manifest.entries.find((e) => e.path === "libs/big.jar")?.method;
    expect(["hardlink", "reflink"]).toContain(method);
    if (method === "hardlink") expect(linked.ino).toBe(source.ino);
    expect((await stat(join(box.target, "config.txt"))).ino).not.toBe(
      (await stat(join(layer, "config.txt"))).ino,
    );
    expect(result.stats.methods).toMatchObject({ copy: 1 });
    // A second instance may link the same (now multiply linked) layer file.
    await mergeLayers({
      layers: [layer],
      target: join(box.root, "instances", "i-2"),
      files: { link: ["**/*.jar"] },
    });
  });

  it("strips setuid, setgid and sticky bits, also for files under the link policy", async () => {
    const layer = await box.layer("app", {
      suid: { content: "s", mode: 0o6755 },
      "linked.jar": { content: "l", mode: 0o4755 },
      "sticky/": "",
    });
    const result = await mergeLayers({
      layers: [layer],
      target: box.target,
      files: { link: ["*.jar"] },
    });
    expect((await stat(join(box.target, "suid"))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(box.target, "linked.jar"))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(box.target, "linked.jar"))).ino).not.toBe(
      (await stat(join(layer, "linked.jar"))).ino,
    );
    expect(result.manifest.entries.find((e) => e.path === "linked.jar")).toMatchObject({
      method: "copy",
      mode: 0o755,
    });
  });

  it("writes NFC names for names stored decomposed", async () => {
    const layer = await box.layer("app", { "cafe\u0301.txt": "x" });
    const result = await mergeLayers({ layers: [layer], target: box.target });
    expect(await readdir(box.target)).toContain("caf\u00e9.txt");
    expect(result.manifest.entries[0]?.path).toBe("caf\u00e9.txt");
  });

  it("enforces the total bytes cap before writing anything", async () => {
    const layer = await box.layer("app", { a: "x".repeat(600), b: "y".repeat(600) });
    const error = await failure(
      mergeLayers({ layers: [layer], target: box.target, limits: { maxTotalBytes: 1000 } }),
    );
    expect(error.code).toBe("TEMPLATE_INVALID");
    expect(error.message).toMatch(/1200 bytes, over the limit of 1000/);
    await expect(lstat(box.target)).rejects.toThrow(/ENOENT/);
  });

  it("counts substituted output against the cap", async () => {
    const layer = await box.layer("app", { "a.txt": "${BIG}" });
    const error = await failure(
      mergeLayers({
        layers: [layer],
        target: box.target,
        files: { substitute: ["*.txt"] },
        variables: { BIG: "z".repeat(5000) },
        limits: { maxTotalBytes: 1000 },
      }),
    );
    expect(error.message).toMatch(/exceeds 1000 bytes/);
    await expect(lstat(box.target)).rejects.toThrow(/ENOENT/);
  });

  it("removes staging leftovers of a crashed merge", async () => {
    const layer = await box.layer("app", { a: "a" });
    await mkdir(join(box.root, "instances", ".i-1.orch-staging-crashed/x"), { recursive: true });
    await mergeLayers({ layers: [layer], target: box.target });
    expect(await readdir(join(box.root, "instances"))).toEqual(["i-1"]);
  });

  it("stops when aborted, leaving no instance and no staging", async () => {
    const layer = await box.layer("app", { a: "a", "b/c": "c" });
    const controller = new AbortController();
    controller.abort(new Error("cancelled by test"));
    await expect(
      mergeLayers({ layers: [layer], target: box.target, signal: controller.signal }),
    ).rejects.toThrow("cancelled by test");
    await expect(lstat(box.target)).rejects.toThrow(/ENOENT/);
    expect(await readdir(join(box.root, "instances")).catch(() => [])).toEqual([]);
  });

  it("validates its options", async () => {
    const layer = await box.layer("app", { a: "a" });
    expect((await failure(mergeLayers({ layers: [], target: box.target }))).code).toBe(
      "VALIDATION_FAILED",
    );
    expect(
      (await failure(mergeLayers({ layers: [layer], target: join(layer, "inside") }))).code,
    ).toBe("VALIDATION_FAILED");
    expect(
      (await failure(mergeLayers({ layers: [layer], target: box.target, limits: { maxDepth: 0 } })))
        .code,
    ).toBe("VALIDATION_FAILED");
    expect(
      (
        await failure(
          mergeLayers({
            layers: [layer],
            target: box.target,
            files: { merge: { a: "toml" as never } },
          }),
        )
      ).code,
    ).toBe("TEMPLATE_INVALID");
  });

  it("accepts { name, dir } layers and a ResolvedVariables namespace", async () => {
    const dir = await box.layer("folder-name", { "a.txt": "${SECRET}" });
    const variables = new ResolvedVariables({ SECRET: "hunter2" }, ["SECRET"]);
    const result = await mergeLayers({
      layers: [{ name: "display", dir }],
      target: box.target,
      files: { substitute: ["*.txt"] },
      variables,
    });
    expect(result.manifest.entries[0]?.layer).toBe("display");
    expect(await readFile(join(box.target, "a.txt"), "utf8")).toBe("hunter2");
    // The manifest stores a digest, never the value.
    expect(await readFile(join(box.target, MANIFEST_FILE), "utf8")).not.toContain("hunter2");
  });

  it("rejects a layer file hardlinked elsewhere unless it is under the link policy", async () => {
    const layer = await box.layer("app", { "a.jar": "x" });
    await link(join(layer, "a.jar"), join(box.root, "elsewhere"));
    const error = await failure(mergeLayers({ layers: [layer], target: box.target }));
    expect(error.message).toBe("layer app: a.jar is a hard link (2 names)");
    await mergeLayers({ layers: [layer], target: box.target, files: { link: ["*.jar"] } });
    // A cache only the caller writes may vouch for its files (instances of other templates link them).
    await mergeLayers({
      layers: [layer],
      target: join(box.root, "instances", "i-2"),
      allowSharedFiles: true,
    });
  });

  it("keeps the target's parent free of anything but the instance after many merges", async () => {
    const layer = await box.layer("app", { a: "a" });
    await writeFile(join(box.root, "unrelated"), "");
    await mergeLayers({ layers: [layer], target: box.target });
    await mergeLayers({ layers: [layer], target: box.target });
    expect(await readdir(join(box.root, "instances"))).toEqual(["i-1"]);
  });
});
