/**
 * The one place where S3 and network failures become core error codes.
 * Retryable (UNAVAILABLE): throttling, 5xx, timeouts, connection failures.
 * Abort errors pass through unchanged so callers can tell a cancellation.
 */
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  OrchestratorError,
  UnauthorizedError,
  UnavailableError,
} from "@orchestrator/core";

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  cause?: unknown;
}

const THROTTLED = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "TooManyRequests",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "ProvisionedThroughputExceededException",
  "BandwidthLimitExceeded",
]);

const TRANSIENT = new Set([
  "InternalError",
  "ServiceUnavailable",
  "RequestTimeout",
  "RequestTimeoutException",
  "TimeoutError",
  "PriorRequestNotComplete",
  "OperationAborted",
  "BadDigest",
  "IncompleteBody",
]);

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EPROTO",
  "ERR_STREAM_PREMATURE_CLOSE",
  "UND_ERR_SOCKET",
]);

const CREDENTIALS = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "TokenRefreshRequired",
  "InvalidToken",
  "CredentialsProviderError",
]);

function networkCode(error: unknown, depth = 0): string | undefined {
  if (typeof error !== "object" || error === null || depth > 3) return undefined;
  const shape = error as SdkErrorShape;
  if (shape.code && NETWORK_CODES.has(shape.code)) return shape.code;
  if (/socket hang up|ECONNRESET|premature close/i.test(shape.message ?? "")) return "ECONNRESET";
  return networkCode(shape.cause, depth + 1);
}

/** Maps any error from the S3 client (or its body stream) to an `OrchestratorError`. */
export function classifyS3Error(error: unknown, what: string): unknown {
  if (OrchestratorError.isInstance(error)) return error;
  const shape = (typeof error === "object" && error !== null ? error : {}) as SdkErrorShape;
  const name = shape.name ?? shape.Code ?? "";
  if (name === "AbortError") return error;
  const status = shape.$metadata?.httpStatusCode;
  const details = { ...(name ? { s3Code: name } : {}), ...(status ? { status } : {}) };
  const options = { cause: error, details };
  const reason = shape.message && shape.message !== name ? `${name}: ${shape.message}` : name;

  if (name === "NoSuchBucket") {
    // A missing bucket is a configuration fault, not a missing layer: the
    // cache must not conclude "layer deleted" (and may serve a stale copy).
    return new OrchestratorError("UNAVAILABLE", `S3 bucket does not exist (${what})`, {
      ...options,
      retryable: false,
    });
  }
  if (name === "NoSuchKey" || name === "NotFound" || status === 404) {
    return new NotFoundError("object", what, options);
  }
  if (name === "PreconditionFailed" || status === 412) {
    return new ConflictError(`${what} changed (precondition failed)`, options);
  }
  if (CREDENTIALS.has(name)) {
    return new UnauthorizedError(`S3 refused the credentials for ${what} (${reason})`, options);
  }
  if (name === "RequestTimeTooSkewed") {
    return new UnauthorizedError(
      `S3 refused ${what}: this machine's clock is off (${reason})`,
      options,
    );
  }
  if (name === "AccessDenied" || name === "AllAccessDisabled" || status === 403) {
    return new ForbiddenError(`S3 denied access to ${what} (${reason})`, options);
  }
  if (name === "EntityTooLarge" || status === 413) {
    return new OrchestratorError(
      "VALIDATION_FAILED",
      `${what} is too large for S3 (${reason})`,
      options,
    );
  }
  if (THROTTLED.has(name) || status === 429 || status === 503) {
    return new UnavailableError(`S3 is throttling requests for ${what} (${reason})`, options);
  }
  if (TRANSIENT.has(name) || (status !== undefined && status >= 500)) {
    return new UnavailableError(`S3 failed transiently for ${what} (${reason || status})`, options);
  }
  const network = networkCode(error);
  if (network) {
    return new UnavailableError(`S3 endpoint unreachable for ${what} (${network})`, {
      cause: error,
      details: { ...details, code: network },
    });
  }
  if (status === undefined && /timed? ?out/i.test(shape.message ?? "")) {
    return new UnavailableError(`S3 request for ${what} timed out`, options);
  }
  return new OrchestratorError(
    "INTERNAL",
    `S3 request for ${what} failed: ${reason || String(error)}`,
    options,
  );
}
