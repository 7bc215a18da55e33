import { describe, expect, it } from "vitest";
import {
  ConflictError,
  ERROR_CODES,
  ForbiddenError,
  NotFoundError,
  OrchestratorError,
  RateLimitedError,
  TemplateInvalidError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
} from "../src/index.js";

describe("OrchestratorError", () => {
  it("gives every subclass a stable code", () => {
    const cases: [OrchestratorError, string][] = [
      [new NotFoundError("instance", "inst_1"), "NOT_FOUND"],
      [new ConflictError("taken"), "CONFLICT"],
      [new ValidationError([{ path: "name", message: "required" }]), "VALIDATION_FAILED"],
      [new TemplateInvalidError("bad layer"), "TEMPLATE_INVALID"],
      [new UnavailableError("db down"), "UNAVAILABLE"],
      [new UnauthorizedError(), "UNAUTHORIZED"],
      [new ForbiddenError(), "FORBIDDEN"],
      [new RateLimitedError("slow down", 30), "RATE_LIMITED"],
    ];
    for (const [error, code] of cases) {
      expect(error.code).toBe(code);
      expect(ERROR_CODES).toContain(code);
      expect(OrchestratorError.isInstance(error)).toBe(true);
      expect(error).toBeInstanceOf(Error);
    }
  });

  it("marks only UNAVAILABLE and RATE_LIMITED retryable by default", () => {
    expect(new UnavailableError("x").retryable).toBe(true);
    expect(new RateLimitedError("x", 1).retryable).toBe(true);
    expect(new ConflictError("x").retryable).toBe(false);
    expect(new ConflictError("deadlock", { retryable: true }).retryable).toBe(true);
  });

  it("recognises errors from another copy of the package", () => {
    // A duplicate copy has its own class but registers the same global symbol.
    const marker = Symbol.for("@orchestrator/core/error");
    const foreign = Object.assign(new Error("from a copy"), { [marker]: true, code: "NOT_FOUND" });
    expect(OrchestratorError.isInstance(foreign)).toBe(true);
    expect(OrchestratorError.hasCode(foreign, "NOT_FOUND")).toBe(true);
    expect(OrchestratorError.isInstance(new Error("plain"))).toBe(false);
    expect(OrchestratorError.isInstance(null)).toBe(false);
    expect(OrchestratorError.isInstance("NOT_FOUND")).toBe(false);
  });

  it("keeps the cause and serialises only client-safe fields", () => {
    const cause = new Error("ECONNREFUSED 10.0.0.1:3306 password=hunter2");
    const error = new UnavailableError("database unavailable", {
      cause,
      details: { retryAfter: 1 },
    });
    expect(error.cause).toBe(cause);
    expect(error.toJSON()).toEqual({
      code: "UNAVAILABLE",
      message: "database unavailable",
      details: { retryAfter: 1 },
    });
    expect(JSON.stringify(error)).not.toContain("hunter2");
  });

  it("lists every validation issue", () => {
    const error = new ValidationError([
      { path: "variables.MAX_PLAYERS", message: "must be at most 100" },
      { path: "name", message: "is required" },
    ]);
    expect(error.issues).toHaveLength(2);
    expect(error.message).toContain("variables.MAX_PLAYERS: must be at most 100");
    expect(error.details.issues).toEqual(error.issues);
  });
});
