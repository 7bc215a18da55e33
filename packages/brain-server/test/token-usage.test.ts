import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHarness, type Harness } from "./brain-harness.js";

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await h.close();
});

describe("API token last use", () => {
  it("is recorded, at most once a minute (no write per request)", async () => {
    const lastUsed = async () =>
      (await h.request("GET", "/api/v1/tokens", { token: h.adminToken })).body.items[0]
        .lastUsedAt as string | null;
    const first = await lastUsed();
    expect(first).toBe(h.clock.now().toISOString());
    h.clock.advance(30_000);
    expect(await lastUsed()).toBe(first);
    h.clock.advance(31_000);
    expect(await lastUsed()).toBe(h.clock.now().toISOString());
  });
});
