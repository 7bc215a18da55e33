import {
  ConflictError,
  NotFoundError,
  OrchestratorError,
  UnavailableError,
  ValidationError,
} from "@orchestrator/core";

interface DockerodeError {
  statusCode?: number;
  code?: string;
  json?: { message?: string } | null;
  reason?: string;
  message?: string;
}

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOENT",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EACCES",
]);

/**
 * The one place Docker's errors become Orchestrator's: 404 → NOT_FOUND,
 * 409 → CONFLICT, 400 → VALIDATION_FAILED, an unreachable engine →
 * UNAVAILABLE (retryable), the rest → INTERNAL with the engine's message.
 */
export function classifyDockerError(error: unknown, what: string): OrchestratorError {
  if (OrchestratorError.isInstance(error)) return error;
  const dockerError = (error ?? {}) as DockerodeError;
  const message = dockerError.json?.message ?? dockerError.reason ?? dockerError.message ?? "";
  switch (dockerError.statusCode) {
    case 404:
      return new NotFoundError("docker object", what, { cause: error, details: { message } });
    case 409:
      return new ConflictError(`${what}: ${message}`, { cause: error });
    case 400:
      return new ValidationError([{ path: what, message }], { cause: error });
    default:
      break;
  }
  if (dockerError.code && CONNECTION_CODES.has(dockerError.code)) {
    return new UnavailableError(`the Docker engine is unreachable (${dockerError.code})`, {
      cause: error,
    });
  }
  if ((error as Error)?.name === "AbortError") {
    return new UnavailableError(`${what}: aborted`, { cause: error, retryable: false });
  }
  return new OrchestratorError("INTERNAL", `${what}: ${message || "Docker engine error"}`, {
    cause: error,
  });
}

/** The HTTP status of a dockerode error, if it has one. */
export function dockerStatus(error: unknown): number | undefined {
  return (error as DockerodeError | null)?.statusCode;
}
