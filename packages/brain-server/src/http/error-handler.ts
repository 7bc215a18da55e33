/**
 * The one place where HTTP status codes are chosen: core error codes → status,
 * fastify's own errors (validation, body size, content type) → our error shape
 * `{ error: { code, message, details } }`. Unknown errors are logged and
 * answered as INTERNAL without leaking their message.
 */
import { type ErrorCode, OrchestratorError } from "@orchestrator/core";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  NOT_FOUND: 404,
  CONFLICT: 409,
  ILLEGAL_TRANSITION: 409,
  VALIDATION_FAILED: 400,
  TEMPLATE_INVALID: 422,
  UNAVAILABLE: 503,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  RATE_LIMITED: 429,
  PAYLOAD_TOO_LARGE: 413,
  PLUGIN_STATE: 503,
  INTERNAL: 500,
  AGENT_IDENTITY_CONFLICT: 409,
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: Record<string, unknown> };
}

function send(reply: FastifyReply, status: number, body: ErrorBody): FastifyReply {
  const retryAfter = body.error.details.retryAfterSeconds;
  if (typeof retryAfter === "number") reply.header("retry-after", String(Math.ceil(retryAfter)));
  else if (status === 503) reply.header("retry-after", "1");
  return reply.status(status).send(body);
}

export function toErrorBody(error: OrchestratorError): ErrorBody {
  return { error: error.toJSON() };
}

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (OrchestratorError.isInstance(error)) {
      const status = HTTP_STATUS[error.code] ?? 500;
      if (status >= 500) request.log.warn({ err: error }, "request failed");
      return send(reply, status, toErrorBody(error));
    }
    if (error.validation) {
      const issues = error.validation.map((issue) => ({
        path: `${error.validationContext ?? "body"}${issue.instancePath || ""}`.replaceAll(
          "/",
          ".",
        ),
        message: issue.message ?? "is invalid",
      }));
      return send(reply, 400, {
        error: {
          code: "VALIDATION_FAILED",
          message: `validation failed: ${issues.map((i) => `${i.path} ${i.message}`).join("; ")}`,
          details: { issues },
        },
      });
    }
    if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return send(reply, 413, {
        error: { code: "PAYLOAD_TOO_LARGE", message: "request body too large", details: {} },
      });
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      // fastify's own client errors (bad JSON, wrong content type): safe to describe.
      return send(reply, status, {
        error: { code: "VALIDATION_FAILED", message: error.message, details: {} },
      });
    }
    request.log.error({ err: error }, "unexpected error");
    return send(reply, 500, {
      error: { code: "INTERNAL", message: "internal error", details: {} },
    });
  });

  app.setNotFoundHandler((request, reply) =>
    send(reply, 404, {
      error: {
        code: "NOT_FOUND",
        message: `no route ${request.method} ${request.url.split("?")[0]}`,
        details: {},
      },
    }),
  );
}
