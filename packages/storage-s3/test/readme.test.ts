import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { publishTemplate, TemplateCache } from "@orchestrator/core/cache";
import { afterAll, describe, expect, it } from "vitest";
import { S3TemplateStorage } from "../src/index.js";
import { baseConfig, deletePrefix, rawClient, runPrefix, s3SkipReason } from "./helpers.js";

describe.skipIf(s3SkipReason)("README example (against the test S3 server)", () => {
  const prefix = `${runPrefix}readme/`;

  afterAll(async () => {
    const client = rawClient();
    await deletePrefix(client, prefix);
    client.destroy();
  });

  it("runs as written", async () => {
    const work = await mkdtemp(join(tmpdir(), "orch-s3-readme-"));
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
    const { bucket, endpoint, credentials } = baseConfig();

    // The README's lines, with the test server's settings.
    const storage = new S3TemplateStorage({ bucket, prefix, endpoint, credentials });
    await publishTemplate(storage, join(work, "hello"));
    const cache = new TemplateCache({ storage, dir: join(work, "cache") });
    const layer = await cache.acquire("hello");
    expect(layer.report).toMatchObject({ outcome: "created", downloadedFiles: 1 });
    layer.release();

    await cache.destroy();
    await storage.destroy();
    await rm(work, { recursive: true, force: true });
  });
});
