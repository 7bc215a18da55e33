import { FakeClock } from "@orchestrator/core/testing";
import { SqlRepositories } from "@orchestrator/repository-sql";
import { describe, expect, it } from "vitest";
import { buildBrain, loadBrainConfig, TOKENS } from "../src/index.js";

describe("README example", () => {
  it("composes a custom brain with swapped ports", async () => {
    const myClock = new FakeClock("2030-01-01T00:00:00Z");
    const config = loadBrainConfig({
      env: { ORCH_PORT: "0", ORCH_DATABASE_URL: "sqlite::memory:" },
    });
    const repositories = SqlRepositories.fromUrl("sqlite::memory:");
    const brain = await buildBrain(config, {
      repositories,
      scheduler: { strategy: "spread" },
      register: (container) => container.register(TOKENS.Clock, { useValue: myClock }),
      logger: false,
    });
    const admin = await brain.ensureAdmin();
    expect(admin?.password).toMatch(/.{12,}/);
    brain.startLoops();
    const address = await brain.listen();
    const health = await fetch(`${address}/api/v1/healthz`);
    expect(await health.json()).toEqual({ ok: true });
    const docs = await fetch(`${address}/api/openapi.json`);
    expect(((await docs.json()) as { paths: object }).paths).toHaveProperty("/api/v1/instances");
    // The swapped clock is the one the Brain uses.
    expect(brain.container.resolve(TOKENS.Clock)).toBe(myClock);
    await brain.close();
    await repositories.destroy();
  });
});
