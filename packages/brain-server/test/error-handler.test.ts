import {
  ConflictError,
  NotFoundError,
  RateLimitedError,
  UnavailableError,
} from "@orchestrator/core";
import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { registerErrorHandler } from "../src/http/error-handler.js";
import { createValidatorCompiler } from "../src/http/validator-compiler.js";

function app() {
  const server = Fastify({ bodyLimit: 100 });
  server.setValidatorCompiler(createValidatorCompiler());
  registerErrorHandler(server);
  server.get("/missing", async () => {
    throw new NotFoundError("instance", "inst_9");
  });
  server.get("/conflict", async () => {
    throw new ConflictError("port taken");
  });
  server.get("/down", async () => {
    throw new UnavailableError("database unavailable", { cause: new Error("secret dsn") });
  });
  server.get("/slow", async () => {
    throw new RateLimitedError("too many", 42);
  });
  server.get("/bug", async () => {
    throw new Error("secret internals");
  });
  server.post(
    "/body",
    {
      schema: {
        body: {
          type: "object",
          additionalProperties: false,
          required: ["name"],
          properties: { name: { type: "string" } },
        },
      },
    },
    async () => ({ ok: true }),
  );
  return server;
}

describe("error handler", () => {
  it("maps core error codes to HTTP status with the error shape", async () => {
    const server = app();
    const missing = await server.inject("/missing");
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({
      error: {
        code: "NOT_FOUND",
        message: "instance 'inst_9' not found",
        details: { kind: "instance", id: "inst_9" },
      },
    });
    expect((await server.inject("/conflict")).statusCode).toBe(409);
  });

  it("answers 503 with Retry-After, never leaking the cause", async () => {
    const response = await app().inject("/down");
    expect(response.statusCode).toBe(503);
    expect(response.headers["retry-after"]).toBe("1");
    expect(response.body).not.toContain("secret dsn");
  });

  it("answers 429 with the limiter's Retry-After", async () => {
    const response = await app().inject("/slow");
    expect(response.statusCode).toBe(429);
    expect(response.headers["retry-after"]).toBe("42");
  });

  it("hides unexpected errors behind INTERNAL", async () => {
    const response = await app().inject("/bug");
    expect(response.statusCode).toBe(500);
    expect(response.json().error.code).toBe("INTERNAL");
    expect(response.body).not.toContain("secret internals");
  });

  it("turns schema failures, bad JSON and big bodies into our shape", async () => {
    const server = app();
    const unknownField = await server.inject({
      method: "POST",
      url: "/body",
      payload: { name: "a", state: "RUNNING" },
    });
    expect(unknownField.statusCode).toBe(400);
    expect(unknownField.json().error.code).toBe("VALIDATION_FAILED");
    expect(unknownField.json().error.message).toContain("must NOT have additional properties");
    const wrongType = await server.inject({ method: "POST", url: "/body", payload: { name: 5 } });
    expect(wrongType.statusCode).toBe(400);
    expect(wrongType.json().error.details.issues).toEqual([
      { path: "body.name", message: "must be string" },
    ]);
    const badJson = await server.inject({
      method: "POST",
      url: "/body",
      headers: { "content-type": "application/json" },
      payload: "{nope",
    });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json().error.code).toBe("VALIDATION_FAILED");
    const big = await server.inject({
      method: "POST",
      url: "/body",
      payload: { name: "x".repeat(500) },
    });
    expect(big.statusCode).toBe(413);
    expect(big.json().error.code).toBe("PAYLOAD_TOO_LARGE");
    const noRoute = await server.inject("/nowhere?x=1");
    expect(noRoute.statusCode).toBe(404);
    expect(noRoute.json().error.message).toBe("no route GET /nowhere");
  });
});
