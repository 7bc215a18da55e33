// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${NAME} placeholders in plain strings are the subject of these tests
import { chmod, mkdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OrchestratorError } from "../../src/errors/orchestrator-error.js";
import { type MergeLayersOptions, mergeLayers } from "../../src/templates/index.js";
import { fileContents, sandbox, snapshot, writeTree } from "./fixtures.js";

let box: Awaited<ReturnType<typeof sandbox>>;
let base: string;
let app: string;
beforeEach(async () => {
  box = await sandbox();
  base = await box.layer("base", {
    "server.jar": "jar v1",
    "config/server.properties": "port=${PORT}\nmotd=${MOTD}\n",
    "config/other.yml": "x: 1\n",
    "plugins/a.jar": "a",
  });
  app = await box.layer("app", {
    "config/app.txt": "name=${NAME}\n",
    "world/README": "template readme",
  });
});
afterEach(async () => {
  await box.cleanup();
});

const options = (extra: Partial<MergeLayersOptions> = {}): MergeLayersOptions => ({
  layers: [base, app],
  target: box.target,
  files: { substitute: ["config/**"] },
  variables: { PORT: "1", MOTD: "hi", NAME: "n" },
  ...extra,
});

/** Files the server writes: never the template's. */
async function addServerFiles() {
  await writeTree(box.target, {
    "world/level.dat": "precious world",
    "logs/latest.log": "log line",
    "plugins/a/data.yml": "plugin data",
    "user.txt": "uploaded by the user",
  });
}

// Change times are compared with the manifest's: make later writes visibly later.
const tick = () => new Promise((resolve) => setTimeout(resolve, 15));

describe("re-prepare", () => {
  it("keeps files the template does not own and rewrites nothing when nothing changed", async () => {
    await mergeLayers(options());
    await addServerFiles();
    const before = await snapshot(box.target);
    const result = await mergeLayers(options());
    expect(result.reprepared).toBe(true);
    expect(result.stats).toMatchObject({ written: 0, kept: 6, removed: 0 });
    expect(await snapshot(box.target)).toEqual(before);
  });

  it("updates exactly the files that changed in a layer (O(changed))", async () => {
    await mergeLayers(options());
    await addServerFiles();
    await tick();
    await writeFile(join(app, "world/README"), "template readme v2");
    const result = await mergeLayers(options());
    expect(result.stats).toMatchObject({ written: 1, kept: 5, removed: 0 });
    const files = await fileContents(box.target);
    expect(files["world/README"]).toBe("template readme v2");
    expect(files["world/level.dat"]).toBe("precious world");
  });

  it("rewrites only the files using a variable whose value changed", async () => {
    await mergeLayers(options());
    const result = await mergeLayers(options({ variables: { PORT: "2", MOTD: "hi", NAME: "n" } }));
    expect(result.stats).toMatchObject({ written: 1, kept: 5 });
    expect(await readFile(join(box.target, "config/server.properties"), "utf8")).toBe(
      "port=2\nmotd=hi\n",
    );
  });

  it("restores template files that were modified, chmod-ed or deleted in the instance", async () => {
    await mergeLayers(options());
    await tick();
    await writeFile(join(box.target, "server.jar"), "tampered");
    await chmod(join(box.target, "plugins/a.jar"), 0o600);
    await rm(join(box.target, "config/other.yml"));
    // Same size, old mtime: only the change time gives it away.
    await writeFile(join(box.target, "world/README"), "template READme");
    await utimes(join(box.target, "world/README"), new Date(0), new Date(0));
    const result = await mergeLayers(options());
    expect(result.stats).toMatchObject({ written: 4, kept: 2 });
    expect(await fileContents(box.target)).toMatchObject({
      "server.jar": "jar v1",
      "config/other.yml": "x: 1\n",
      "world/README": "template readme",
    });
    expect((await stat(join(box.target, "plugins/a.jar"))).mode & 0o777).toBe(0o644);
  });

  it("deletes what the new template dropped, keeping non-template files and the directories holding them", async () => {
    await mergeLayers(options());
    await addServerFiles();
    await rm(join(base, "plugins"), { recursive: true });
    await rm(join(app, "config/app.txt"));
    const result = await mergeLayers(options());
    expect(result.stats).toMatchObject({ removed: 2 });
    const files = await fileContents(box.target);
    expect(files["plugins/a.jar"]).toBeUndefined();
    expect(files["config/app.txt"]).toBeUndefined();
    expect(files["plugins/a/data.yml"]).toBe("plugin data");
    expect(result.manifest.entries.map((e) => e.path)).not.toContain("plugins");
  });

  it("removes dropped directories that only held template files", async () => {
    await mergeLayers(options());
    await rm(join(base, "plugins"), { recursive: true });
    await mergeLayers(options());
    await expect(stat(join(box.target, "plugins"))).rejects.toThrow(/ENOENT/);
  });

  it("replaces a non-template file at a path the template now ships", async () => {
    await mergeLayers(options());
    await writeFile(join(box.target, "user.txt"), "user version");
    await writeFile(join(app, "user.txt"), "template version");
    await mergeLayers(options());
    expect(await readFile(join(box.target, "user.txt"), "utf8")).toBe("template version");
  });

  it("refuses (CONFLICT) to replace a directory of non-template files, changing nothing", async () => {
    await mergeLayers(options());
    await addServerFiles();
    await writeFile(join(app, "newer.txt"), "will not land");
    await writeFile(join(app, "logs"), "the template now wants a file here");
    const before = await snapshot(box.target);
    const error = await mergeLayers(options()).catch((caught: unknown) => caught);
    expect(OrchestratorError.hasCode(error, "CONFLICT")).toBe(true);
    expect((error as OrchestratorError).details).toMatchObject({ path: "logs" });
    expect(await snapshot(box.target)).toEqual(before);
  });

  it("replaces a directory of template files with a file", async () => {
    await mergeLayers(options());
    await rm(join(base, "plugins"), { recursive: true });
    await writeFile(join(base, "plugins"), "now a file");
    await mergeLayers(options());
    expect(await readFile(join(box.target, "plugins"), "utf8")).toBe("now a file");
  });

  it("leaves the instance as it was when a layer is rejected or a variable is unknown", async () => {
    await mergeLayers(options());
    await addServerFiles();
    await writeFile(join(app, "config/app.txt"), "changed ${UNKNOWN}");
    const before = await snapshot(box.target);
    const unknown = await mergeLayers(options()).catch((caught: unknown) => caught);
    expect(OrchestratorError.hasCode(unknown, "TEMPLATE_INVALID")).toBe(true);
    expect(await snapshot(box.target)).toEqual(before);
    await writeFile(join(app, "config/app.txt"), "fine");
    await mkdir(join(app, "bad\u202Ename"));
    const rejected = await mergeLayers(options()).catch((caught: unknown) => caught);
    expect(OrchestratorError.hasCode(rejected, "TEMPLATE_INVALID")).toBe(true);
    expect(await snapshot(box.target)).toEqual(before);
  });

  it("adopts an existing directory without a manifest, keeping its files", async () => {
    await writeTree(box.target, { "world/level.dat": "old world", "server.jar": "old jar" });
    const result = await mergeLayers(options());
    expect(result.reprepared).toBe(true);
    expect(await fileContents(box.target)).toMatchObject({
      "world/level.dat": "old world",
      "server.jar": "jar v1",
    });
  });

  it("is idempotent: a re-prepare after a re-prepare writes nothing", async () => {
    await mergeLayers(options());
    await tick();
    await writeFile(join(base, "server.jar"), "jar v2");
    expect((await mergeLayers(options())).stats.written).toBe(1);
    expect((await mergeLayers(options())).stats.written).toBe(0);
  });
});
