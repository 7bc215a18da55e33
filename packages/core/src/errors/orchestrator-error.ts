/**
 * The one error base class of Orchestrator. Every error a package throws on
 * purpose is an `OrchestratorError` with a stable `code`; HTTP status codes are
 * chosen from that code in one place (the Brain's error handler).
 */

/** Stable error codes. Clients and the panel may switch on these; never rename one. */
export const ERROR_CODES = [
  "NOT_FOUND",
  "CONFLICT",
  "ILLEGAL_TRANSITION",
  "VALIDATION_FAILED",
  "TEMPLATE_INVALID",
  "UNAVAILABLE",
  "UNAUTHORIZED",
  "FORBIDDEN",
  "RATE_LIMITED",
  "PAYLOAD_TOO_LARGE",
  "PLUGIN_STATE",
  "INTERNAL",
  /** A second agent process syncs with a node credential another live process holds. */
  "AGENT_IDENTITY_CONFLICT",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Codes whose operations may succeed when retried later (with backoff). */
const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set(["UNAVAILABLE", "RATE_LIMITED"]);

// A registered symbol, so `isInstance` works across duplicate copies of this
// package in one process (two versions installed side by side).
const MARKER = Symbol.for("@orchestrator/core/error");

export interface OrchestratorErrorOptions {
  /** The underlying error, kept for logs; never shown to API clients. */
  cause?: unknown;
  /** Structured, client-safe details (never secrets). */
  details?: Record<string, unknown>;
  /** Overrides the retryability implied by the code. */
  retryable?: boolean;
}

export class OrchestratorError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: OrchestratorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    Object.defineProperty(this, MARKER, { value: true });
    this.name = "OrchestratorError";
    this.code = code;
    this.details = options.details ?? {};
    this.retryable = options.retryable ?? RETRYABLE_CODES.has(code);
  }

  /** True for any OrchestratorError, including one from another copy of this package. */
  static isInstance(error: unknown): error is OrchestratorError {
    return (
      typeof error === "object" &&
      error !== null &&
      (error as Record<symbol, unknown>)[MARKER] === true
    );
  }

  /** True when `error` is an OrchestratorError with the given code. */
  static hasCode(error: unknown, code: ErrorCode): error is OrchestratorError {
    return OrchestratorError.isInstance(error) && error.code === code;
  }

  /** A client-safe JSON shape: `{ code, message, details }`. */
  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export class NotFoundError extends OrchestratorError {
  constructor(kind: string, id: string, options: OrchestratorErrorOptions = {}) {
    super("NOT_FOUND", `${kind} '${id}' not found`, {
      ...options,
      details: { kind, id, ...options.details },
    });
    this.name = "NotFoundError";
  }
}

export class ConflictError extends OrchestratorError {
  constructor(message: string, options: OrchestratorErrorOptions = {}) {
    super("CONFLICT", message, options);
    this.name = "ConflictError";
  }
}

/** One problem found by validation: where (a path such as `variables.PORT`) and what. */
export interface ValidationIssue {
  path: string;
  message: string;
}

export class ValidationError extends OrchestratorError {
  readonly issues: readonly ValidationIssue[];

  constructor(issues: readonly ValidationIssue[], options: OrchestratorErrorOptions = {}) {
    const summary = issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ");
    super("VALIDATION_FAILED", `validation failed: ${summary}`, {
      ...options,
      details: { issues, ...options.details },
    });
    this.name = "ValidationError";
    this.issues = issues;
  }
}

export class TemplateInvalidError extends OrchestratorError {
  constructor(message: string, options: OrchestratorErrorOptions = {}) {
    super("TEMPLATE_INVALID", message, options);
    this.name = "TemplateInvalidError";
  }
}

export class UnavailableError extends OrchestratorError {
  constructor(message: string, options: OrchestratorErrorOptions = {}) {
    super("UNAVAILABLE", message, options);
    this.name = "UnavailableError";
  }
}

export class UnauthorizedError extends OrchestratorError {
  constructor(message = "authentication required", options: OrchestratorErrorOptions = {}) {
    super("UNAUTHORIZED", message, options);
    this.name = "UnauthorizedError";
  }
}

export class ForbiddenError extends OrchestratorError {
  constructor(message = "not allowed", options: OrchestratorErrorOptions = {}) {
    super("FORBIDDEN", message, options);
    this.name = "ForbiddenError";
  }
}

export class RateLimitedError extends OrchestratorError {
  constructor(message: string, retryAfterSeconds: number, options: OrchestratorErrorOptions = {}) {
    super("RATE_LIMITED", message, {
      ...options,
      details: { retryAfterSeconds, ...options.details },
    });
    this.name = "RateLimitedError";
  }
}
