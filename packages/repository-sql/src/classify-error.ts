/**
 * Database errors, classified in one place per dialect (better-sqlite3 and
 * mysql2), then turned into core's typed errors. The classification also says
 * whether retrying is safe: a deadlock or busy database rolled the work back,
 * and a connection that was already closed never received the statement.
 */
import {
  ConflictError,
  OrchestratorError,
  UnavailableError,
  ValidationError,
} from "@orchestrator/core";

export type DatabaseFailureKind =
  /** Unique or foreign key violated: the request conflicts with stored data. */
  | "conflict"
  /** Deadlock, lock wait timeout, database busy: the transaction was rolled back; retry it. */
  | "transient"
  /** The connection is gone (server restart, network): the store is unavailable for now. */
  | "connection"
  /** A value the database refused (too long, out of range). */
  | "invalid"
  /** Anything else: a bug or a broken schema. */
  | "unknown";

export interface DatabaseFailure {
  kind: DatabaseFailureKind;
  /** Short machine-readable reason (`duplicate`, `deadlock`, `busy`, `connection-lost`, ...). */
  reason: string;
  /** The driver's code (`ER_DUP_ENTRY`, `SQLITE_BUSY`, ...). */
  code: string;
  /** True when the statement certainly never reached the server (safe to resend). */
  neverSent: boolean;
}

interface DriverError {
  code?: unknown;
  errno?: unknown;
  message?: unknown;
  fatal?: unknown;
}

function driverError(error: unknown): DriverError | null {
  return typeof error === "object" && error !== null ? (error as DriverError) : null;
}

/** better-sqlite3's `SqliteError` codes (extended result codes). */
export function classifySqliteError(error: unknown): DatabaseFailure | null {
  const e = driverError(error);
  if (!e || typeof e.code !== "string" || !e.code.startsWith("SQLITE_")) return null;
  const code = e.code;
  const failure = (kind: DatabaseFailureKind, reason: string): DatabaseFailure => ({
    kind,
    reason,
    code,
    neverSent: false,
  });
  if (
    code === "SQLITE_CONSTRAINT_UNIQUE" ||
    code === "SQLITE_CONSTRAINT_PRIMARYKEY" ||
    code === "SQLITE_CONSTRAINT_ROWID"
  ) {
    return failure("conflict", "duplicate");
  }
  if (code === "SQLITE_CONSTRAINT_FOREIGNKEY") return failure("conflict", "reference");
  if (code.startsWith("SQLITE_CONSTRAINT")) return failure("invalid", "constraint");
  if (code === "SQLITE_TOOBIG" || code === "SQLITE_MISMATCH" || code === "SQLITE_RANGE") {
    return failure("invalid", "value");
  }
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return failure("transient", "busy");
  }
  if (
    code.startsWith("SQLITE_IOERR") ||
    code.startsWith("SQLITE_CANTOPEN") ||
    code === "SQLITE_FULL" ||
    code.startsWith("SQLITE_READONLY") ||
    code === "SQLITE_NOTADB" ||
    code.startsWith("SQLITE_CORRUPT")
  ) {
    return failure("connection", "storage");
  }
  return failure("unknown", "sqlite");
}

// MySQL/MariaDB server error numbers (mysql2 sets `errno` and `code`).
const MYSQL_DUPLICATE = new Set([1062, 1586]); // ER_DUP_ENTRY, ER_DUP_ENTRY_WITH_KEY_NAME
const MYSQL_REFERENCE = new Set([1451, 1452, 1216, 1217]); // ER_ROW_IS_REFERENCED(_2), ER_NO_REFERENCED_ROW(_2)
const MYSQL_DEADLOCK = 1213; // ER_LOCK_DEADLOCK
const MYSQL_LOCK_WAIT = 1205; // ER_LOCK_WAIT_TIMEOUT
const MYSQL_INVALID = new Set([
  1264, // ER_WARN_DATA_OUT_OF_RANGE
  1265, // WARN_DATA_TRUNCATED
  1292, // ER_TRUNCATED_WRONG_VALUE
  1366, // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
  1406, // ER_DATA_TOO_LONG
  1048, // ER_BAD_NULL_ERROR
]);
const MYSQL_CONNECTION = new Set([
  1040, // ER_CON_COUNT_ERROR
  1053, // ER_SERVER_SHUTDOWN
  1077, // ER_NORMAL_SHUTDOWN
  1078, // ER_GOT_SIGNAL
  1079, // ER_SHUTDOWN_COMPLETE
  1152, // ER_ABORTING_CONNECTION
  1153, // ER_NET_PACKET_TOO_LARGE (the server drops the connection)
  1158, // ER_NET_READ_ERROR
  1159, // ER_NET_READ_INTERRUPTED
  1160, // ER_NET_ERROR_ON_WRITE
  1161, // ER_NET_WRITE_INTERRUPTED
  1927, // ER_CONNECTION_KILLED (MariaDB)
  4031, // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
]);
// Client-side (mysql2 / Node socket) codes meaning the connection is unusable.
const CLIENT_CONNECTION_CODES = new Set([
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR",
  "PROTOCOL_ENQUEUE_AFTER_QUIT",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ER_CON_COUNT_ERROR",
]);
// mysql2 refuses a command on a connection it already knows is closed: the
// statement was never sent, so resending it on another connection is safe.
const CLOSED_STATE_MESSAGE = "Can't add new command when connection is in closed state";

/** mysql2 errors: server errors carry `errno`, client errors a string `code`. */
export function classifyMysqlError(error: unknown): DatabaseFailure | null {
  const e = driverError(error);
  if (!e) return null;
  const code = typeof e.code === "string" ? e.code : "";
  const errno = typeof e.errno === "number" ? e.errno : undefined;
  const message = typeof e.message === "string" ? e.message : "";
  const failure = (
    kind: DatabaseFailureKind,
    reason: string,
    neverSent = false,
  ): DatabaseFailure => ({ kind, reason, code: code || String(errno ?? "unknown"), neverSent });
  if (message === CLOSED_STATE_MESSAGE) return failure("connection", "connection-closed", true);
  if (errno !== undefined) {
    if (MYSQL_DUPLICATE.has(errno)) return failure("conflict", "duplicate");
    if (MYSQL_REFERENCE.has(errno)) return failure("conflict", "reference");
    if (errno === MYSQL_DEADLOCK) return failure("transient", "deadlock");
    if (errno === MYSQL_LOCK_WAIT) return failure("transient", "lock-timeout");
    if (MYSQL_INVALID.has(errno)) return failure("invalid", "value");
    if (MYSQL_CONNECTION.has(errno)) return failure("connection", "connection-lost");
  }
  if (CLIENT_CONNECTION_CODES.has(code)) {
    // Refused or unreachable before any statement went out: safe to resend.
    const neverSent = code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN";
    return failure("connection", "connection-lost", neverSent);
  }
  if (e.fatal === true) return failure("connection", "connection-lost");
  if (errno !== undefined || code.startsWith("ER_")) return failure("unknown", "mysql");
  return null;
}

// Which failure an error we produced came from (for the retry decisions).
const FAILURES = new WeakMap<object, DatabaseFailure>();

/** The failure behind an error made by `toOrchestratorError`, if any. */
export function failureOf(error: unknown): DatabaseFailure | undefined {
  return typeof error === "object" && error !== null ? FAILURES.get(error) : undefined;
}

/**
 * Turns a driver error into core's typed error. Messages stay generic: driver
 * messages can quote stored values (hashes, names), which must not reach API
 * clients; the original error is kept as `cause` for logs.
 */
export function toOrchestratorError(
  error: unknown,
  classify: (error: unknown) => DatabaseFailure | null,
): unknown {
  if (OrchestratorError.isInstance(error)) return error;
  const failure = classify(error);
  if (!failure) return error;
  const details = { reason: failure.reason, driverCode: failure.code };
  let result: OrchestratorError;
  switch (failure.kind) {
    case "conflict":
      result = new ConflictError(
        failure.reason === "duplicate"
          ? "already exists (duplicate key)"
          : "refers to or is referred to by other data",
        { cause: error, details },
      );
      break;
    case "transient":
      result = new UnavailableError(`database ${failure.reason}: try again`, {
        cause: error,
        details,
        retryable: true,
      });
      break;
    case "connection":
      result = new UnavailableError("database unavailable", {
        cause: error,
        details,
        retryable: true,
      });
      break;
    case "invalid":
      result = new ValidationError([{ path: "", message: "value refused by the database" }], {
        cause: error,
        details,
      });
      break;
    default:
      result = new OrchestratorError("INTERNAL", `database error (${failure.code})`, {
        cause: error,
        details,
      });
  }
  FAILURES.set(result, failure);
  return result;
}
