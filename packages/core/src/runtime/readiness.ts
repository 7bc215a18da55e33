/**
 * Readiness detection the agent runs after `Runtime.start`: RUNNING means
 * ready, not merely spawned. A check is a log line matching a regular
 * expression, a TCP port accepting connections, or none; each has a start
 * timeout, ends early when the server exits, and honours an AbortSignal.
 */
import { connect } from "node:net";
import type { ReadinessDefinition } from "../domain/template.js";
import {
  NotFoundError,
  OrchestratorError,
  type OrchestratorErrorOptions,
  ValidationError,
} from "../errors/orchestrator-error.js";
import type { Runtime, RuntimeExit, RuntimeLogLine } from "../ports/runtime.js";

/** What "ready" means for one instance. */
export type ReadinessCheck =
  | { kind: "none" }
  | { kind: "log"; pattern: RegExp }
  | { kind: "tcp"; port: string };

/** Why a server never became ready: it took too long, or it exited first. */
export type ReadinessFailure = "timeout" | "exited";

/** A server that did not become ready (code `UNAVAILABLE`, not retryable as such). */
export class ReadinessError extends OrchestratorError {
  readonly reason: ReadinessFailure;
  readonly exit: RuntimeExit | null;

  constructor(
    reason: ReadinessFailure,
    message: string,
    exit: RuntimeExit | null = null,
    options: OrchestratorErrorOptions = {},
  ) {
    super("UNAVAILABLE", message, {
      retryable: false,
      ...options,
      details: {
        reason,
        ...(exit ? { exitCode: exit.exitCode, signal: exit.signal } : {}),
        ...options.details,
      },
    });
    this.name = "ReadinessError";
    this.reason = reason;
    this.exit = exit;
  }
}

/** Options shared by the readiness helpers. */
export interface ReadinessOptions {
  /** Give up after this many milliseconds (the template's start timeout). */
  timeoutMs: number;
  /** Cancels the wait; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Log lines before this time do not count (default: when the current run started). */
  since?: Date;
  /** Pause between two TCP connection attempts (default 100 ms). */
  pollIntervalMs?: number;
}

/** How a wait ended well. */
export interface ReadinessResult {
  check: ReadinessCheck["kind"];
  elapsedMs: number;
  /** The matching line, for `log`. */
  line?: RuntimeLogLine;
  /** The address that accepted, for `tcp`. */
  address?: { host: string; port: number };
}

/** The check and timeout a template's readiness definition asks for. */
export function readinessCheckFromDefinition(definition: ReadinessDefinition): {
  check: ReadinessCheck;
  timeoutMs: number;
} {
  const { log, tcp, timeoutSeconds } = definition;
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
    throw new ValidationError([{ path: "readiness.timeoutSeconds", message: "must be > 0" }]);
  }
  const timeoutMs = Math.round(timeoutSeconds * 1000);
  if (log !== undefined && tcp !== undefined) {
    throw new ValidationError([{ path: "readiness", message: "choose one of log or tcp" }]);
  }
  if (log !== undefined) {
    try {
      return { check: { kind: "log", pattern: new RegExp(log) }, timeoutMs };
    } catch (error) {
      throw new ValidationError(
        [{ path: "readiness.log", message: "not a valid regular expression" }],
        { cause: error },
      );
    }
  }
  if (tcp !== undefined) return { check: { kind: "tcp", port: tcp }, timeoutMs };
  return { check: { kind: "none" }, timeoutMs };
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("aborted", "AbortError");
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** True when a TCP connection to `host:port` is accepted within `timeoutMs`. */
export function probeTcpPort(
  host: string,
  port: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (accepted: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      resolve(accepted);
    };
    const onAbort = () => finish(false);
    const timer = setTimeout(() => finish(false), timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => finish(true));
    socket.once("error", () => finish(false));
  });
}

/**
 * Resolves with the first line matching `pattern` from the lines `open`
 * returns (typically `(signal) => runtime.logs(id, { follow: true, signal })`;
 * the signal ends the follow once the wait is over). Rejects with
 * `ReadinessError` on timeout, or with the caller's reason when aborted.
 */
export function waitForLogLine(
  open: (
    signal: AbortSignal,
  ) => AsyncIterable<RuntimeLogLine> | Promise<AsyncIterable<RuntimeLogLine>>,
  pattern: RegExp,
  options: Omit<ReadinessOptions, "since" | "pollIntervalMs">,
): Promise<RuntimeLogLine> {
  const matcher = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ""));
  return withDeadline(options, async (signal) => {
    for await (const line of await open(signal)) {
      if (matcher.test(line.line)) return line;
    }
    throw new ReadinessError("exited", "the log ended before a line matched");
  });
}

/**
 * Resolves once `host:port` accepts a TCP connection, trying every
 * `pollIntervalMs`; rejects with `ReadinessError` on timeout.
 */
export function waitForTcpPort(
  host: string,
  port: number,
  options: Omit<ReadinessOptions, "since">,
): Promise<void> {
  const interval = options.pollIntervalMs ?? 100;
  return withDeadline(options, async (signal) => {
    while (!signal.aborted) {
      if (await probeTcpPort(host, port, Math.max(interval, 1000), signal)) return;
      await pause(interval, signal);
    }
  });
}

/**
 * Runs `body` with an internal signal that aborts when it settles, when the
 * deadline passes (→ `ReadinessError("timeout")`) or when the caller aborts
 * (→ the caller's reason). `fail` lets watchers end the wait with an error.
 */
async function withDeadline<T>(
  options: Pick<ReadinessOptions, "timeoutMs" | "signal">,
  body: (signal: AbortSignal, fail: (error: unknown) => void) => Promise<T>,
): Promise<T> {
  const { timeoutMs, signal } = options;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError("timeoutMs must be a positive number");
  }
  if (signal?.aborted) throw abortReason(signal);
  const controller = new AbortController();
  let fail!: (error: unknown) => void;
  const failure = new Promise<never>((_, reject) => {
    fail = reject;
  });
  const timer = setTimeout(
    () => fail(new ReadinessError("timeout", `not ready after ${timeoutMs} ms`)),
    timeoutMs,
  );
  const onAbort = () => fail(abortReason(signal!));
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await Promise.race([body(controller.signal, fail), failure]);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    controller.abort();
  }
}

/**
 * Waits until a started instance is ready by `check`. Ends early with
 * `ReadinessError("exited")` when the server exits first, with
 * `ReadinessError("timeout")` after `timeoutMs`. Log lines count from the
 * start of the current run (`since`), so a previous run's output never
 * matches.
 */
export async function waitUntilReady(
  runtime: Runtime,
  instanceId: string,
  check: ReadinessCheck,
  options: ReadinessOptions,
): Promise<ReadinessResult> {
  const started = performance.now();
  const elapsedMs = () => performance.now() - started;
  return withDeadline(options, async (signal, fail) => {
    await runtime.onExit(
      (exit) => {
        if (exit.instanceId !== instanceId) return;
        const how = exit.signal ?? `code ${exit.exitCode ?? "unknown"}`;
        fail(new ReadinessError("exited", `exited (${how}) before it was ready`, exit));
      },
      { signal },
    );
    const info = await runtime.inspect(instanceId);
    if (!info) throw new NotFoundError("runtime instance", instanceId);
    if (info.status !== "running") {
      const exit: RuntimeExit = {
        instanceId,
        exitCode: info.exitCode,
        signal: info.signal,
        requested: false,
        at: info.finishedAt ?? new Date(),
      };
      throw new ReadinessError("exited", `is ${info.status}, not running`, exit);
    }
    switch (check.kind) {
      case "none":
        return { check: "none", elapsedMs: elapsedMs() };
      case "log": {
        const since = options.since ?? info.startedAt ?? undefined;
        const lines = await runtime.logs(instanceId, { follow: true, since, signal });
        const matcher = new RegExp(check.pattern.source, check.pattern.flags.replace(/[gy]/g, ""));
        for await (const line of lines) {
          if (matcher.test(line.line)) return { check: "log", elapsedMs: elapsedMs(), line };
        }
        // The follow only ends early when the instance was removed.
        throw new ReadinessError("exited", "the instance went away before it was ready");
      }
      case "tcp": {
        const port = info.ports.find((candidate) => candidate.name === check.port);
        if (!port) {
          throw new ValidationError([
            { path: "readiness.tcp", message: `no port named '${check.port}'` },
          ]);
        }
        const address = runtime.portAddress
          ? await runtime.portAddress(instanceId, check.port)
          : { host: "127.0.0.1", port: port.hostPort };
        const interval = options.pollIntervalMs ?? 100;
        while (!signal.aborted) {
          if (await probeTcpPort(address.host, address.port, Math.max(interval, 1000), signal)) {
            return { check: "tcp", elapsedMs: elapsedMs(), address };
          }
          await pause(interval, signal);
        }
        throw new ReadinessError("timeout", "aborted");
      }
    }
  });
}
