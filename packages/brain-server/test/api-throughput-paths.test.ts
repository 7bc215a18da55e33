/**
 * The paths made fast for the API throughput target keep their behaviour:
 * group-committed creations fail one by one, and cached API tokens still
 * lose access at once when revoked through this Brain (and within the cache
 * time when revoked behind its back, as another replica would).
 */
import type { Repositories } from "@orchestrator/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TOKENS } from "../src/brain.js";
import { TOKEN_CACHE_TTL_MS } from "../src/services/auth-service.js";
import { createHarness, type Harness, helloTemplate } from "./brain-harness.js";

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
  const pushed = await h.request("POST", "/api/v1/templates", {
    token: h.adminToken,
    body: { definition: helloTemplate },
  });
  expect(pushed.status).toBe(201);
});
afterAll(async () => {
  await h.close();
});

describe("instance creation, group-committed", () => {
  it("creates requests that arrive together in one go, and refuses only the bad ones", async () => {
    const create = (body: Record<string, unknown>) =>
      h.request("POST", "/api/v1/instances", { token: h.adminToken, body });
    const good = (i: number) => ({
      template: "hello",
      name: `batch-${i}`,
      variables: { RCON_PASSWORD: `secret-${i}` },
    });
    const repositories = h.brain.container.resolve<Repositories>(TOKENS.Repositories);
    const original = repositories.transaction.bind(repositories);
    let transactions = 0;
    repositories.transaction = ((work, options) => {
      transactions += 1;
      return original(work, options);
    }) as Repositories["transaction"];
    const responses = await Promise.all([
      ...Array.from({ length: 8 }, (_, i) => create(good(i))),
      create({ template: "missing", name: "no-template" }),
      create({ template: "hello", name: "no-password" }),
      create({ template: "hello", version: 7, name: "no-version" }),
      create({
        template: "hello",
        name: "too-long",
        variables: { GREETING: "x".repeat(51), RCON_PASSWORD: "p" },
      }),
      ...Array.from({ length: 8 }, (_, i) => create(good(8 + i))),
    ]);
    repositories.transaction = original;
    // Twenty requests of one turn of the event loop: one transaction, not twenty.
    expect(transactions).toBe(1);
    const statuses = responses.map((response) => response.status);
    expect(statuses.slice(0, 8)).toEqual(Array(8).fill(201));
    expect(statuses.slice(8, 12)).toEqual([404, 400, 404, 400]);
    expect(responses[8]!.body.error.code).toBe("NOT_FOUND");
    expect(responses[9]!.body.error.details.issues[0].path).toBe("variables.RCON_PASSWORD");
    expect(statuses.slice(12)).toEqual(Array(8).fill(201));
    const created = [...responses.slice(0, 8), ...responses.slice(12)].map((r) => r.body);
    expect(new Set(created.map((body) => body.id)).size).toBe(16);
    expect(created.every((body) => body.state === "REQUESTED")).toBe(true);
    expect(created.every((body) => body.variables.RCON_PASSWORD === "********")).toBe(true);

    // Each one stored, with its creation event and audit entry; the refused ones left nothing.
    const listed = await h.request("GET", "/api/v1/instances?limit=100", { token: h.adminToken });
    const names = listed.body.items.map((instance: { name: string }) => instance.name);
    for (let i = 0; i < 16; i += 1) expect(names).toContain(`batch-${i}`);
    for (const refused of ["no-template", "no-password", "no-version", "too-long"])
      expect(names).not.toContain(refused);
    for (const body of created) {
      const events = await h.request("GET", `/api/v1/instances/${body.id}/events`, {
        token: h.adminToken,
      });
      expect(events.body.items.map((event: { to: string }) => event.to)).toContain("REQUESTED");
    }
    const audit = await h.request("GET", "/api/v1/audit?action=instance.create&limit=100", {
      token: h.adminToken,
    });
    expect(audit.body.items).toHaveLength(16);
  });

  it("a write that fails in a shared transaction fails alone", async () => {
    // Two requests in one turn of the event loop share a transaction; the
    // first attempt of it fails (as a lost connection or a refused row
    // would), so each request is written again in its own transaction.
    const repositories = h.brain.container.resolve<Repositories>(TOKENS.Repositories);
    const original = repositories.transaction.bind(repositories);
    let calls = 0;
    repositories.transaction = (async (work, options) => {
      calls += 1;
      if (calls === 1) throw Object.assign(new Error("simulated write failure"), { first: true });
      return original(work, options);
    }) as Repositories["transaction"];
    try {
      const [a, b] = await Promise.all(
        ["alone-a", "alone-b"].map((name) =>
          h.request("POST", "/api/v1/instances", {
            token: h.adminToken,
            body: { template: "hello", name, variables: { RCON_PASSWORD: "p" } },
          }),
        ),
      );
      expect([a!.status, b!.status]).toEqual([201, 201]);
      // One shared attempt, then one transaction each.
      expect(calls).toBe(3);
    } finally {
      repositories.transaction = original;
    }
  });
});

describe("API tokens, cached", () => {
  it("stop working at once when deleted, and the user's when disabled", async () => {
    const token = await h.userToken("operator");
    const me = () => h.request("GET", "/api/v1/instances", { token });
    expect((await me()).status).toBe(200);
    const listed = await h.request("GET", "/api/v1/tokens", { token });
    const id = listed.body.items[0].id as string;
    expect((await h.request("DELETE", `/api/v1/tokens/${id}`, { token })).status).toBe(200);
    expect((await me()).status).toBe(401);

    const other = await h.userToken("operator");
    expect((await h.request("GET", "/api/v1/instances", { token: other })).status).toBe(200);
    const users = await h.request("GET", "/api/v1/users", { token: h.adminToken });
    const user = users.body.items.at(-1);
    const disabled = await h.request("PATCH", `/api/v1/users/${user.id}`, {
      token: h.adminToken,
      body: { disabled: true },
    });
    expect(disabled.status).toBe(200);
    expect((await h.request("GET", "/api/v1/instances", { token: other })).status).toBe(401);
  });

  it("revoked behind this Brain's back (another replica) stop within the cache time", async () => {
    const token = await h.userToken("viewer");
    const me = () => h.request("GET", "/api/v1/instances", { token });
    expect((await me()).status).toBe(200);
    const repositories = h.brain.container.resolve<Repositories>(TOKENS.Repositories);
    const users = await h.request("GET", "/api/v1/users", { token: h.adminToken });
    const user = users.body.items.at(-1);
    const [stored] = await repositories.tokens.listForUser(user.id);
    await repositories.tokens.delete(stored!.id);
    h.clock.advance(TOKEN_CACHE_TTL_MS);
    expect((await me()).status).toBe(401);
  });
});

describe("scheduling, placements written in chunks and lanes", () => {
  it("places a burst across nodes side by side, never past capacity, one event each", async () => {
    const s = await createHarness();
    try {
      await s.request("POST", "/api/v1/templates", {
        token: s.adminToken,
        body: { definition: helloTemplate },
      });
      // 4,096 MB and 11 ports each, 512 MB and one port per instance: 8 fit on a node.
      for (const name of ["lane-a", "lane-b", "lane-c"]) await s.joinNode(name);
      const created = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          s.request("POST", "/api/v1/instances", {
            token: s.adminToken,
            body: { template: "hello", name: `burst-${i}`, variables: { RCON_PASSWORD: "p" } },
          }),
        ),
      );
      expect(created.every((response) => response.status === 201)).toBe(true);
      await s.brain.runLoopsOnce();
      const listed = await s.request("GET", "/api/v1/instances?limit=100", { token: s.adminToken });
      const items = listed.body.items as Array<{
        id: string;
        state: string;
        nodeId: string | null;
        ports: Record<string, number>;
      }>;
      const scheduled = items.filter((instance) => instance.state === "SCHEDULED");
      expect(scheduled).toHaveLength(24);
      expect(items.filter((instance) => instance.state === "REQUESTED")).toHaveLength(6);
      const perNode = new Map<string, number[]>();
      for (const instance of scheduled) {
        const ports = perNode.get(instance.nodeId!) ?? [];
        ports.push(instance.ports.game!);
        perNode.set(instance.nodeId!, ports);
      }
      expect([...perNode.values()].map((ports) => ports.length)).toEqual([8, 8, 8]);
      for (const ports of perNode.values()) expect(new Set(ports).size).toBe(ports.length);
      for (const instance of scheduled) {
        const events = await s.request("GET", `/api/v1/instances/${instance.id}/events`, {
          token: s.adminToken,
        });
        expect(
          events.body.items.filter((event: { to: string }) => event.to === "SCHEDULED"),
        ).toHaveLength(1);
      }
    } finally {
      await s.close();
    }
  });
});
