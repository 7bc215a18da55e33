/**
 * Hostile API input against a real Brain process (SQLite file, no external
 * service): live streams of revoked credentials, prototype-pollution keys,
 * deep nesting, bad numbers, token confusion, login brute force per IP.
 * (brain-security.test.ts in brain-server covers roles, CSRF, mass assignment,
 * wrong types, 413, per-account login limits and node/report IDOR in process.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAllCliProcesses, waitFor } from "./support/cli-process.js";
import { Platform } from "./support/platform.js";

/** Opens an SSE stream and resolves `closed` (with the elapsed time) when the server ends it. */
async function openStream(url: string, token: string) {
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
    signal: controller.signal,
  });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  let ended = false;
  const closed = (async () => {
    try {
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
    } catch {
      // a reset connection is closed too
    }
    ended = true;
  })();
  return {
    closed,
    get ended() {
      return ended;
    },
    abort: () => controller.abort(),
  };
}

describe("hostile API input (real Brain process)", { timeout: 60_000 }, () => {
  let platform: Platform;

  const createUser = async (username: string, role: string) => {
    const created = await platform.api("POST", "/users", {
      username,
      password: `${username}-password-123`,
      role,
    });
    expect(created.status).toBe(201);
    const login = await fetch(`${platform.url}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password: `${username}-password-123` }),
    });
    const session = (await login.json()) as { token: string };
    const token = await platform.api("POST", "/tokens", { name: `${username}-t` }, session.token);
    expect(token.status).toBe(201);
    expect((token.body as { token: { id: string } }).token.id).toMatch(/\w/);
    return {
      userId: (created.body as { id: string }).id,
      token: (token.body as { secret: string }).secret,
      tokenId: (token.body as { token: { id: string } }).token.id,
      session: session.token,
    };
  };

  beforeAll(async () => {
    platform = await Platform.started("sqlite", { ORCH_LOGIN_MAX_ATTEMPTS: "3" });
  }, 60_000);

  afterAll(async () => {
    try {
      await platform?.dispose();
    } finally {
      await stopAllCliProcesses();
    }
  }, 60_000);

  it("deleting a token closes its open event stream within 5 s", async () => {
    const viewer = await createUser("stream-viewer", "viewer");
    const stream = await openStream(`${platform.url}/api/v1/events`, viewer.token);
    try {
      expect(stream.ended).toBe(false);
      const started = Date.now();
      // Revoked by its owner from another session (tokens are per user).
      const revoked = await platform.api(
        "DELETE",
        `/tokens/${viewer.tokenId}`,
        undefined,
        viewer.session,
      );
      expect(revoked.status).toBeLessThan(300);
      await waitFor("the stream to end", () => stream.ended, { timeoutMs: 5_000, intervalMs: 20 });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect((await platform.api("GET", "/instances", undefined, viewer.token)).status).toBe(401);
    } finally {
      stream.abort();
    }
  });

  it("disabling a user closes their open event stream within 5 s", async () => {
    const operator = await createUser("stream-operator", "operator");
    const stream = await openStream(`${platform.url}/api/v1/events`, operator.token);
    try {
      const started = Date.now();
      const disabled = await platform.api("PATCH", `/users/${operator.userId}`, { disabled: true });
      expect(disabled.status).toBe(200);
      await waitFor("the stream to end", () => stream.ended, { timeoutMs: 5_000, intervalMs: 20 });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      stream.abort();
    }
  });

  it("refuses __proto__ / constructor keys (400) and stays unpolluted", async () => {
    for (const body of [
      '{"template":"x","name":"p1","__proto__":{"isAdmin":true}}',
      '{"template":"x","name":"p2","variables":{"__proto__":{"polluted":"yes"}}}',
      '{"name":"t","constructor":{"prototype":{"polluted":"yes"}}}',
    ]) {
      const path = body.includes("template") ? "/instances" : "/tokens";
      const response = await fetch(`${platform.url}/api/v1${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${platform.token}`, "content-type": "application/json" },
        body,
      });
      expect(response.status, body).toBeGreaterThanOrEqual(400);
      expect(response.status, body).toBeLessThan(500);
    }
    // Nothing leaked into shared prototypes: a plain read still answers normally.
    const me = await platform.api("GET", "/auth/me");
    expect(me.status).toBe(200);
    expect(JSON.stringify(me.body)).not.toContain("polluted");
  });

  it("answers deeply nested and malformed JSON with 4xx, never 500, and keeps serving", async () => {
    const deep = `${"[".repeat(50_000)}${"]".repeat(50_000)}`;
    for (const body of [
      `{"template":"x","name":"deep","variables":{"A":${deep}}}`,
      '{"template":"x",',
      '{"template":"x","name":"dup","name":"dup2"}',
      "\u0000\u0001",
    ]) {
      const response = await fetch(`${platform.url}/api/v1/instances`, {
        method: "POST",
        headers: { authorization: `Bearer ${platform.token}`, "content-type": "application/json" },
        body,
      });
      expect(response.status, body.slice(0, 40)).toBeGreaterThanOrEqual(400);
      expect(response.status, body.slice(0, 40)).toBeLessThan(500);
      const error = (await response.json()) as { error?: { code?: string } };
      expect(error.error?.code).toBeTruthy();
    }
    expect((await platform.api("GET", "/instances")).status).toBe(200);
    expect(platform.brain!.exited).toBe(false);
  });

  it("refuses negative, huge, NaN and non-numeric query numbers with 400", async () => {
    for (const limit of [
      "-1",
      "0",
      "1e309",
      "NaN",
      "Infinity",
      "99999999999999999999",
      "1.5",
      "abc",
    ]) {
      const response = await platform.api("GET", `/instances?limit=${encodeURIComponent(limit)}`);
      expect(response.status, `limit=${limit}`).toBe(400);
    }
  });

  it("keeps credentials in their lane: user tokens on agent routes, node-only secrets on user routes", async () => {
    const sync = await platform.api("POST", "/agent/sync", {
      inventory: [],
      reports: [],
      commandResults: [],
      logs: [],
      wait: false,
    });
    expect([401, 403]).toContain(sync.status);
    const joinToken = (await platform.api("POST", "/nodes/join-tokens", {})).body as {
      secret: string;
    };
    // A join token is not a credential anywhere but /agent/join.
    expect((await platform.api("GET", "/instances", undefined, joinToken.secret)).status).toBe(401);
    expect(
      (
        await platform.api(
          "POST",
          "/agent/sync",
          { inventory: [], reports: [], commandResults: [], logs: [], wait: false },
          joinToken.secret,
        )
      ).status,
    ).toBe(401);
  });

  it("hides users, tokens and the audit log across users (IDOR)", async () => {
    const alice = await createUser("alice-idor", "operator");
    const bob = await createUser("bob-idor", "operator");
    // Bob sees only his own tokens and cannot delete Alice's.
    const bobsTokens = (await platform.api("GET", "/tokens", undefined, bob.token)).body as {
      items: { id: string }[];
    };
    expect(bobsTokens.items.map((t) => t.id)).not.toContain(alice.tokenId);
    const steal = await platform.api("DELETE", `/tokens/${alice.tokenId}`, undefined, bob.token);
    expect([403, 404]).toContain(steal.status);
    expect((await platform.api("GET", "/auth/me", undefined, alice.token)).status).toBe(200);
    expect((await platform.api("GET", `/users/${alice.userId}`, undefined, bob.token)).status).toBe(
      403,
    );
    expect((await platform.api("GET", "/audit", undefined, bob.token)).status).toBe(403);
  });

  it("limits login brute force per IP across usernames: 429 with Retry-After", async () => {
    let last: Response | null = null;
    for (let i = 0; i < 8 && last?.status !== 429; i += 1) {
      last = await fetch(`${platform.url}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: `nobody-${i}`, password: "guess" }),
      });
    }
    expect(last!.status).toBe(429);
    expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});
