import { OrchestratorError } from "@orchestrator/core";
import { FakeClock } from "@orchestrator/core/testing";
import { describe, expect, it } from "vitest";
import { LoginRateLimiter } from "../src/auth/login-rate-limiter.js";
import { hashPassword, verifyPassword } from "../src/auth/password-hasher.js";
import { generateSecret, hashSecret, safeEqual, secretKind } from "../src/auth/secret-tokens.js";

describe("passwords", () => {
  it("hashes with a salt and verifies", async () => {
    const first = await hashPassword("correct horse");
    const second = await hashPassword("correct horse");
    expect(first).not.toBe(second);
    expect(first).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(await verifyPassword("correct horse", first)).toBe(true);
    expect(await verifyPassword("correct hors", first)).toBe(false);
    expect(await verifyPassword("x", "not-a-hash")).toBe(false);
  });
});

describe("secrets", () => {
  it("are typed by prefix and stored as hashes", () => {
    const token = generateSecret("apiToken");
    expect(secretKind(token)).toBe("apiToken");
    expect(secretKind(generateSecret("nodeCredential"))).toBe("nodeCredential");
    expect(secretKind("Bearer abc")).toBeNull();
    expect(hashSecret(token)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashSecret(token)).not.toContain(token);
    expect(safeEqual("abc", "abc")).toBe(true);
    expect(safeEqual("abc", "abd")).toBe(false);
    expect(safeEqual("abc", "abcd")).toBe(false);
  });
});

describe("LoginRateLimiter", () => {
  it("limits per account and per IP, and forgets after the window", () => {
    const clock = new FakeClock();
    const limiter = new LoginRateLimiter(clock, 3, 60_000);
    for (let i = 0; i < 3; i += 1) {
      limiter.check("alice", "10.0.0.1");
      limiter.recordFailure("alice", "10.0.0.1");
    }
    const error = (() => {
      try {
        limiter.check("Alice", "10.0.0.9");
      } catch (caught) {
        return caught;
      }
    })();
    expect(OrchestratorError.hasCode(error, "RATE_LIMITED")).toBe(true);
    // The same IP is also limited for another account.
    expect(() => limiter.check("bob", "10.0.0.1")).toThrow(/too many/);
    expect(() => limiter.check("bob", "10.0.0.2")).not.toThrow();
    clock.advance(60_000);
    expect(() => limiter.check("alice", "10.0.0.1")).not.toThrow();
  });

  it("clears an account's failures on success", () => {
    const limiter = new LoginRateLimiter(new FakeClock(), 2, 60_000);
    limiter.recordFailure("carol", "10.0.0.3");
    limiter.recordSuccess("carol");
    limiter.recordFailure("carol", "10.0.0.4");
    expect(() => limiter.check("carol", "10.0.0.5")).not.toThrow();
  });
});
