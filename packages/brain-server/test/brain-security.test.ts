import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_PASSWORD, createHarness, type Harness, helloTemplate } from "./brain-harness.js";
import { TEST_DATABASES } from "./databases.js";

// Every route check runs on SQLite and, in CI, on MariaDB: the same API over either store.
describe.each(TEST_DATABASES)("Brain API security on $name", (database) => {
  let h: Harness;
  let viewer: string;
  let operator: string;
  beforeAll(async () => {
    h = await createHarness({}, {}, database);
    viewer = await h.userToken("viewer");
    operator = await h.userToken("operator");
    await h.request("POST", "/api/v1/templates", {
      token: h.adminToken,
      body: { definition: helloTemplate },
    });
  });
  afterAll(async () => {
    await h.close();
  });

  type Method = "GET" | "POST" | "PATCH" | "DELETE";
  const routes: {
    method: Method;
    url: string;
    body?: unknown;
    role: "viewer" | "operator" | "admin";
  }[] = [
    { method: "GET", url: "/api/v1/templates", role: "viewer" },
    { method: "GET", url: "/api/v1/instances", role: "viewer" },
    { method: "GET", url: "/api/v1/nodes", role: "viewer" },
    { method: "GET", url: "/api/v1/metrics", role: "viewer" },
    {
      method: "POST",
      url: "/api/v1/templates",
      body: { definition: { ...helloTemplate, name: "other" } },
      role: "operator",
    },
    {
      method: "POST",
      url: "/api/v1/instances",
      body: { template: "hello", name: "n", variables: { RCON_PASSWORD: "x" } },
      role: "operator",
    },
    { method: "POST", url: "/api/v1/nodes/join-tokens", body: {}, role: "admin" },
    { method: "GET", url: "/api/v1/users", role: "admin" },
    {
      method: "POST",
      url: "/api/v1/users",
      body: { username: "someone", password: "long-enough-pass", role: "viewer" },
      role: "admin",
    },
    { method: "GET", url: "/api/v1/audit", role: "admin" },
  ];

  describe("Brain API: authentication and roles", () => {
    it.each(routes)("$method $url needs a credential", async ({ method, url, body }) => {
      const response = await h.request(method, url, { body });
      expect(response.status).toBe(401);
      expect(response.body.error.code).toBe("UNAUTHORIZED");
    });

    it.each(routes)("$method $url is for $role and above", async ({ method, url, body, role }) => {
      const tokens = { viewer, operator, admin: h.adminToken };
      const order = ["viewer", "operator", "admin"] as const;
      for (const who of order) {
        const response = await h.request(method, url, { token: tokens[who], body });
        const allowed = order.indexOf(who) >= order.indexOf(role);
        if (allowed) expect(response.status, `${who} on ${method} ${url}`).toBeLessThan(400);
        else {
          expect(response.status, `${who} on ${method} ${url}`).toBe(403);
          expect(response.body.error.code).toBe("FORBIDDEN");
        }
      }
    });

    it("refuses a made-up bearer token, and a node credential on user routes", async () => {
      expect(
        (await h.request("GET", "/api/v1/instances", { token: "orch_pat_forged" })).status,
      ).toBe(401);
      const node = await h.joinNode("n1");
      const asNode = await h.request("GET", "/api/v1/instances", { token: node.credential });
      expect(asNode.status).toBe(403);
      expect(
        (
          await h.request("POST", "/api/v1/agent/sync", {
            token: h.adminToken,
            body: { inventory: [], reports: [], commandResults: [], logs: [], wait: false },
          })
        ).status,
      ).toBe(403);
    });

    it("requires the CSRF token for cookie-authenticated changes, not for bearer tokens", async () => {
      const login = await h.request("POST", "/api/v1/auth/login", {
        body: { username: "admin", password: ADMIN_PASSWORD },
      });
      expect(login.headers["set-cookie"]).toMatch(/orch_session=.*HttpOnly.*SameSite=Strict/);
      const cookie = `orch_session=${login.body.token}`;
      const body = { name: "csrf" };
      const without = await h.request("POST", "/api/v1/tokens", { headers: { cookie }, body });
      expect(without.status).toBe(403);
      expect(without.body.error.message).toMatch(/CSRF/);
      const wrong = await h.request("POST", "/api/v1/tokens", {
        headers: { cookie, "x-csrf-token": "nope" },
        body,
      });
      expect(wrong.status).toBe(403);
      const right = await h.request("POST", "/api/v1/tokens", {
        headers: { cookie, "x-csrf-token": login.body.csrfToken },
        body,
      });
      expect(right.status).toBe(201);
      // Reads need no CSRF token.
      expect((await h.request("GET", "/api/v1/auth/me", { headers: { cookie } })).status).toBe(200);
      // The login's session secret as a bearer header (scripts): no ambient credential, no CSRF.
      const asBearer = await h.request("POST", "/api/v1/tokens", { token: login.body.token, body });
      expect(asBearer.status).toBe(201);
    });

    it("rate-limits logins per account", async () => {
      const fresh = await createHarness({ loginMaxAttempts: 3 }, {}, database);
      try {
        for (let i = 0; i < 3; i += 1) {
          expect(
            (
              await fresh.request("POST", "/api/v1/auth/login", {
                body: { username: "admin", password: "wrong" },
              })
            ).status,
          ).toBe(401);
        }
        const limited = await fresh.request("POST", "/api/v1/auth/login", {
          body: { username: "admin", password: ADMIN_PASSWORD },
        });
        expect(limited.status).toBe(429);
        expect(limited.headers["retry-after"]).toBeDefined();
      } finally {
        await fresh.close();
      }
    });

    it("ends a disabled user's access at once", async () => {
      const token = await h.userToken("operator");
      const me = await h.request("GET", "/api/v1/auth/me", { token });
      expect(me.status).toBe(200);
      await h.request("PATCH", `/api/v1/users/${me.body.user.id}`, {
        token: h.adminToken,
        body: { disabled: true },
      });
      expect((await h.request("GET", "/api/v1/auth/me", { token })).status).toBe(401);
    });

    it("never shows secrets: token secrets once, no hashes, secret variables masked", async () => {
      const created = await h.request("POST", "/api/v1/tokens", {
        token: h.adminToken,
        body: { name: "once" },
      });
      expect(created.body.secret).toMatch(/^orch_pat_/);
      const listed = await h.request("GET", "/api/v1/tokens", { token: h.adminToken });
      expect(JSON.stringify(listed.body)).not.toContain(created.body.secret);
      const users = await h.request("GET", "/api/v1/users", { token: h.adminToken });
      expect(JSON.stringify(users.body)).not.toMatch(/scrypt|passwordHash/);
      const instance = await h.request("POST", "/api/v1/instances", {
        token: operator,
        body: {
          template: "hello",
          name: "secretive",
          variables: { RCON_PASSWORD: "hunter2-very-secret" },
        },
      });
      expect(JSON.stringify(instance.body)).not.toContain("hunter2");
      const list = await h.request("GET", "/api/v1/instances", { token: viewer });
      expect(JSON.stringify(list.body)).not.toContain("hunter2");
      const audit = await h.request("GET", "/api/v1/audit", { token: h.adminToken });
      expect(JSON.stringify(audit.body)).not.toContain("hunter2");
    });
  });

  describe("Brain API: input validation", () => {
    const create = (body: unknown) =>
      h.request("POST", "/api/v1/instances", { token: operator, body });

    it("refuses server-owned fields (mass assignment)", async () => {
      for (const field of [
        { state: "RUNNING" },
        { nodeId: "node_1" },
        { owner: "usr_1" },
        { id: "inst_x" },
        { epoch: 7 },
      ]) {
        const response = await create({
          template: "hello",
          name: "m",
          variables: { RCON_PASSWORD: "x" },
          ...field,
        });
        expect(response.status, JSON.stringify(field)).toBe(400);
        expect(response.body.error.code).toBe("VALIDATION_FAILED");
      }
    });

    it("refuses wrong types, bad numbers and unknown variables with every problem listed", async () => {
      expect((await create({ template: "hello", name: 5 })).status).toBe(400);
      expect((await create({ template: "hello", name: "v", version: -1 })).status).toBe(400);
      expect((await create({ template: "hello", name: "v", version: 1e12 })).status).toBe(400);
      const response = await create({
        template: "hello",
        name: "v",
        variables: { NOPE: "x", GREETING: "y".repeat(60) },
      });
      expect(response.status).toBe(400);
      const paths = response.body.error.details.issues
        .map((issue: { path: string }) => issue.path)
        .sort();
      expect(paths).toEqual(["variables.GREETING", "variables.NOPE", "variables.RCON_PASSWORD"]);
    });

    it("refuses an oversized body with 413", async () => {
      const response = await create({
        template: "hello",
        name: "big",
        variables: { GREETING: "x".repeat(2 * 1024 * 1024) },
      });
      expect(response.status).toBe(413);
    });

    it("answers unknown templates and instances with 404", async () => {
      expect((await create({ template: "nope", name: "x" })).status).toBe(404);
      expect((await h.request("GET", "/api/v1/instances/inst_404", { token: viewer })).status).toBe(
        404,
      );
      expect(
        (await h.request("POST", "/api/v1/instances/inst_404/start", { token: operator })).status,
      ).toBe(404);
    });

    it("refuses invalid template documents with every problem", async () => {
      const response = await h.request("POST", "/api/v1/templates", {
        token: operator,
        body: {
          definition: { name: "Bad Name", layers: [], runtime: {}, resources: { memoryMb: -1 } },
        },
      });
      expect(response.status).toBe(422);
      expect(response.body.error.code).toBe("TEMPLATE_INVALID");
    });
  });

  describe("Brain API: agent boundaries", () => {
    it("ignores reports and command results for another node's instances (IDOR)", async () => {
      // A cluster of exactly two nodes, so the test knows both credentials.
      const h = await createHarness({}, {}, database);
      const operator = h.adminToken;
      const viewer = h.adminToken;
      await h.request("POST", "/api/v1/templates", {
        token: operator,
        body: { definition: helloTemplate },
      });
      const a = await h.joinNode("idor-a");
      const b = await h.joinNode("idor-b");
      const created = await h.request("POST", "/api/v1/instances", {
        token: operator,
        body: { template: "hello", name: "victim", variables: { RCON_PASSWORD: "x" } },
      });
      await h.brain.runLoopsOnce();
      const placed = await h.request("GET", `/api/v1/instances/${created.body.id}`, {
        token: viewer,
      });
      const owner = placed.body.nodeId === a.nodeId ? a : b;
      const other = owner === a ? b : a;
      const first = await h.sync(owner.credential);
      const prepare = first.body.commands.find((c) => c.instanceId === created.body.id)!;
      const at = h.clock.now().toISOString();
      await h.sync(other.credential, {
        reports: [
          {
            n: 1,
            instanceId: created.body.id,
            seq: 1,
            epoch: 1,
            trigger: "prepare",
            reason: "evil",
            at,
          },
        ],
        commandResults: [{ commandId: prepare.id, ok: false, message: "evil" }],
      });
      const after = await h.request("GET", `/api/v1/instances/${created.body.id}`, {
        token: viewer,
      });
      expect(after.body.state).toBe("SCHEDULED");
      // The other node never receives the victim's commands.
      const otherSync = await h.sync(other.credential);
      expect(otherSync.body.commands.some((c) => c.instanceId === created.body.id)).toBe(false);
      await h.close();
    });

    it("refuses a used or unknown join token", async () => {
      const token = await h.request("POST", "/api/v1/nodes/join-tokens", {
        token: h.adminToken,
        body: {},
      });
      const body = {
        joinToken: token.body.secret,
        name: "once",
        capacity: { memoryMb: 1024, cpu: 1, diskMb: 1024 },
        labels: {},
        portRange: { from: 31000, to: 31010 },
        reservedPorts: [],
        runtimes: ["process"],
        agentVersion: "t",
      };
      expect((await h.request("POST", "/api/v1/agent/join", { body })).status).toBe(201);
      expect((await h.request("POST", "/api/v1/agent/join", { body })).status).toBe(401);
      expect(
        (
          await h.request("POST", "/api/v1/agent/join", {
            body: { ...body, joinToken: "orch_join_forged" },
          })
        ).status,
      ).toBe(401);
    });
  });
});
