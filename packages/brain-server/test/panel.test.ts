import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness } from "./brain-harness.js";

let dir: string;
let h: Harness;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "orch-panel-"));
  await mkdir(join(dir, "_nuxt"));
  await writeFile(join(dir, "index.html"), "<!doctype html><title>panel</title>");
  await writeFile(join(dir, "_nuxt", "app.js"), "console.log('panel')");
  h = await createHarness({ panelDir: dir });
});
afterAll(async () => {
  await h.close();
  await rm(dir, { recursive: true, force: true });
});

describe("serving the panel", () => {
  it("serves files, and index.html for the panel's own routes", async () => {
    expect((await h.request("GET", "/")).body).toContain("<title>panel</title>");
    expect((await h.request("GET", "/_nuxt/app.js")).body).toContain("console.log");
    const deep = await h.request("GET", "/instances/inst_1");
    expect(deep.status).toBe(200);
    expect(deep.body).toContain("<title>panel</title>");
  });

  it("keeps API errors as JSON", async () => {
    const missing = await h.request("GET", "/api/v1/nope");
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("NOT_FOUND");
    expect((await h.request("GET", "/api/v1/healthz")).body).toEqual({ ok: true });
  });
});
