import type { Resources } from "../domain/resources.js";
import type { Plugin } from "./plugin.js";

/** Signals a template may use to stop its server gracefully. */
export type RuntimeStopSignal = "SIGTERM" | "SIGINT" | "SIGQUIT" | "SIGHUP";

/** One named port of an instance. */
export interface RuntimePort {
  /** The template's port name (`game`, `query`, ...): lower case, digits and `-`. */
  name: string;
  /** Transport protocol. */
  protocol: "tcp" | "udp";
  /** Port on the host, chosen by the scheduler. */
  hostPort: number;
  /** Port inside a container when it differs from `hostPort` (ignored by the process runtime). */
  containerPort?: number;
}

/** How an instance is stopped gracefully before it is killed. */
export interface RuntimeStopSpec {
  /** A console line written to stdin (e.g. `stop`); null sends `signal` instead. */
  input: string | null;
  /** The signal sent when `input` is null. */
  signal: RuntimeStopSignal;
  /** Seconds to wait for the exit before killing (fractions allowed). */
  timeoutSeconds: number;
}

/**
 * What a runtime needs to run one instance. Commands are argv arrays, never
 * shell strings. Runtimes validate every spec against their local policy
 * (`validateRuntimeSpec` in core) and refuse unknown properties.
 */
export interface RuntimeInstanceSpec {
  /** Stable id of the instance (letters, digits, `_`, `.`, `-`); names files and containers. */
  instanceId: string;
  /**
   * argv: the program and its arguments, passed verbatim (no shell). May be
   * empty only for image-based runtimes, meaning "the image's default command".
   */
  command: readonly string[];
  /** Exactly the environment of the server (nothing is inherited from the agent). */
  env: Readonly<Record<string, string>>;
  /** The instance directory (the server's working directory / only mount). Absolute. */
  workingDirectory: string;
  /** Docker image (ignored by runtimes without images). */
  image?: string;
  /** Named ports: host port given by the scheduler, container port when it differs. */
  ports: readonly RuntimePort[];
  /** Limits: memory and CPU are enforced where `supportsResourceLimits` is true. */
  resources: Resources;
  /** Labels used to find the instance again after an agent restart (instance, node, epoch). */
  labels: Readonly<Record<string, string>>;
  /** How to stop gracefully. */
  stop: RuntimeStopSpec;
}

/** `created`: never started; `running`: a process/container exists; `exited`: it ended. */
export type RuntimeInstanceStatus = "created" | "running" | "exited";

/** What a runtime knows about one instance. */
export interface RuntimeInstanceInfo {
  /** The spec's instance id. */
  instanceId: string;
  /** Current status, observed (not remembered) where the runtime can observe it. */
  status: RuntimeInstanceStatus;
  /** The spec's labels. */
  labels: Readonly<Record<string, string>>;
  /** The spec's ports (so readiness checks and the agent find them after a restart). */
  ports: readonly RuntimePort[];
  /** Process id or container id: stays the same across an agent restart. */
  handle: string;
  /** When the current (or last) run started; null before the first start. */
  startedAt: Date | null;
  /** When the last run ended; null while running or never started. */
  finishedAt: Date | null;
  /**
   * Exit status of the last run in shell convention: a death by signal N is
   * 128 + N (as Docker reports it). Null while running, or when the status
   * could not be known (see `RuntimeExit.exitCode`).
   */
  exitCode: number | null;
  /** Name of the signal that ended the last run (`SIGKILL`), derived from `exitCode` > 128. */
  signal: string | null;
}

/** One line of a server's output. */
export interface RuntimeLogLine {
  /** The stream it was written to. */
  stream: "stdout" | "stderr";
  /** The text, without its line terminator; very long lines are cut (see `LogBacklog`). */
  line: string;
  /** When it was written (or, where the runtime cannot tell, first read). */
  at: Date;
}

/** Resource usage of one instance. */
export interface RuntimeStats {
  /** CPU usage in cores (1.5 = one and a half cores busy), averaged since the previous call. */
  cpu: number;
  /** Resident memory in bytes (without the page cache where the runtime can tell). */
  memoryBytes: number;
  /** Bytes received, when the instance has its own network namespace. */
  networkRxBytes?: number;
  /** Bytes sent, when the instance has its own network namespace. */
  networkTxBytes?: number;
  /** Bytes used by the instance directory. */
  diskBytes?: number;
  /** When the figures were taken. */
  at: Date;
}

/** An observed end of a run. */
export interface RuntimeExit {
  /** The instance that exited. */
  instanceId: string;
  /** Exit status (128 + N for signal N), or null when it could not be observed. */
  exitCode: number | null;
  /** Signal name when `exitCode` > 128. */
  signal: string | null;
  /** True when the runtime stopped or killed it on request (not a crash). */
  requested: boolean;
  /** When the exit was observed. */
  at: Date;
}

/** Options of `Runtime.logs`. */
export interface RuntimeLogOptions {
  /** How many recent lines to return first (default: all of the backlog). */
  tail?: number;
  /** Only lines written at or after this time. */
  since?: Date;
  /** Keep yielding new lines (across restarts of the instance) until `signal` aborts or it is removed. */
  follow?: boolean;
  /** Ends a follow. */
  signal?: AbortSignal;
}

/** Declared abilities of a runtime; use `defineRuntimeCapabilities` so new ones default to false. */
export interface RuntimeCapabilities {
  /** `stats()` returns figures. */
  supportsStats: boolean;
  /** `sendInput()` reaches the server's stdin (so `stop.input` works). */
  supportsInput: boolean;
  /** Memory and CPU limits of the spec are enforced (not merely recorded). */
  supportsResourceLimits: boolean;
}

/** Every capability off: what an unknown runtime is assumed to offer. */
export const DEFAULT_RUNTIME_CAPABILITIES: Readonly<RuntimeCapabilities> = Object.freeze({
  supportsStats: false,
  supportsInput: false,
  supportsResourceLimits: false,
});

/** A full capability set from the ones a runtime declares; the rest default to false. */
export function defineRuntimeCapabilities(
  declared: Partial<RuntimeCapabilities> = {},
): Readonly<RuntimeCapabilities> {
  return Object.freeze({ ...DEFAULT_RUNTIME_CAPABILITIES, ...declared });
}

/**
 * Runs game servers (as processes, containers, ...). Instances are found again
 * after an agent restart by their labels (`list`), never by in-memory maps: a
 * new runtime object over the same state re-attaches logs and exit watching,
 * and `destroy()` releases the runtime's resources without stopping servers.
 *
 * Every method is async (so `guardPlugin` can wrap it). Errors are
 * `OrchestratorError`s: `NOT_FOUND` for an unknown instance, `CONFLICT` for a
 * call that does not fit its status, `FORBIDDEN` / `VALIDATION_FAILED` for a
 * spec the local policy refuses, `UNAVAILABLE` when the engine is unreachable.
 */
export interface Runtime extends Plugin {
  /** A short name (`process`, `docker`) matched against templates' runtime specs. */
  readonly kind: string;
  /** What this runtime can do (see `defineRuntimeCapabilities`). */
  readonly capabilities: Readonly<RuntimeCapabilities>;

  /** Creates (does not start) an instance. Refuses specs that break the local policy. */
  create(
    spec: RuntimeInstanceSpec,
    options?: { signal?: AbortSignal },
  ): Promise<RuntimeInstanceInfo>;
  /** Starts a created or exited instance; resolves once it is spawned (not ready). */
  start(instanceId: string, options?: { signal?: AbortSignal }): Promise<RuntimeInstanceInfo>;
  /**
   * Graceful stop: the spec's stop input or signal, then a kill after the stop
   * timeout (`timeoutSeconds` overrides it). Resolves once it has exited.
   */
  stop(instanceId: string, options?: { timeoutSeconds?: number }): Promise<RuntimeInstanceInfo>;
  /** Kills at once (SIGKILL); resolves once it has exited. */
  kill(instanceId: string): Promise<RuntimeInstanceInfo>;
  /** Removes the instance (kills it first if needed); leaves no process or container. */
  remove(instanceId: string): Promise<void>;
  /** The instance, or null when the runtime does not know it. */
  inspect(instanceId: string): Promise<RuntimeInstanceInfo | null>;
  /** Every instance whose labels include all of `labels`, running or not. */
  list(labels?: Readonly<Record<string, string>>): Promise<RuntimeInstanceInfo[]>;
  /** Recent log lines (`tail`), then new ones while `follow` is set, until `signal` aborts. */
  logs(instanceId: string, options?: RuntimeLogOptions): Promise<AsyncIterable<RuntimeLogLine>>;
  /** Resource usage now (requires `supportsStats`). */
  stats(instanceId: string): Promise<RuntimeStats>;
  /** Writes one console line to the server's stdin (requires `supportsInput`). */
  sendInput(instanceId: string, line: string): Promise<void>;
  /**
   * Calls `listener` on every exit observed from now on, including exits of
   * instances re-attached after a restart. Resolves to the unsubscribe
   * function; aborting `signal` unsubscribes too.
   */
  onExit(
    listener: (exit: RuntimeExit) => void,
    options?: { signal?: AbortSignal },
  ): Promise<() => void>;
  /**
   * Optional: where the agent's host reaches a named port for a readiness
   * probe when that is not `127.0.0.1:<hostPort>` (e.g. a container's own
   * address, because a port proxy accepts connections before the server does).
   */
  portAddress?(instanceId: string, portName: string): Promise<{ host: string; port: number }>;
}
