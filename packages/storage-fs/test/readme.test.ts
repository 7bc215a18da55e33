import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { publishTemplate, TemplateCache } from "@orchestrator/core/cache";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FolderTemplateStorage } from "../src/index.js";

describe("README example", () => {
  let work: string;
  const cwd = process.cwd();

  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), "orch-fs-readme-"));
    await mkdir(join(work, "hello/layers/hello"), { recursive: true });
    await writeFile(
      join(work, "hello/template.json"),
      JSON.stringify({
        name: "hello",
        layers: ["hello"],
        runtime: { process: { command: ["node", "server.js"] } },
        resources: { memoryMb: 64, cpu: 0.1, diskMb: 10 },
      }),
    );
    await writeFile(join(work, "hello/layers/hello/server.js"), "console.log('hi')");
    process.chdir(work);
  });

  afterEach(async () => {
    process.chdir(cwd);
    await rm(work, { recursive: true, force: true });
  });

  it("runs as written", async () => {
    const storage = new FolderTemplateStorage({ root: "./template-store" });
    await storage.init();
    const pushed = await publishTemplate(storage, "./hello");
    expect(pushed.layers[0]?.uploaded).toEqual(["server.js"]);

    const cache = new TemplateCache({ storage, dir: "./layer-cache" });
    const layer = await cache.acquire("hello");
    expect(layer.dir).toMatch(/layers\/hello\/g[0-9a-z]+-[0-9a-f]{8}$/);
    expect(layer.report.outcome).toBe("created");
    layer.release();
    await cache.destroy();
  });
});
