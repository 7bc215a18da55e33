/** Exit codes scripts can rely on. */
import { type ErrorCode, OrchestratorError } from "@orchestrator/core";

export const EXIT = {
  ok: 0,
  /** Something failed (server error, unavailable, unexpected). */
  failure: 1,
  /** Bad usage or invalid input. */
  usage: 2,
  notFound: 3,
  /** Not authenticated or not allowed. */
  denied: 4,
  /** The request conflicts with the current state. */
  conflict: 5,
} as const;

const BY_CODE: Partial<Record<ErrorCode, number>> = {
  VALIDATION_FAILED: EXIT.usage,
  TEMPLATE_INVALID: EXIT.usage,
  PAYLOAD_TOO_LARGE: EXIT.usage,
  NOT_FOUND: EXIT.notFound,
  UNAUTHORIZED: EXIT.denied,
  FORBIDDEN: EXIT.denied,
  CONFLICT: EXIT.conflict,
  ILLEGAL_TRANSITION: EXIT.conflict,
};

export function exitCodeOf(error: unknown): number {
  return OrchestratorError.isInstance(error) ? (BY_CODE[error.code] ?? EXIT.failure) : EXIT.failure;
}
