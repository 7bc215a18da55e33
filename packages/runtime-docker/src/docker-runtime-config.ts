import type { Clock, LogBacklogOptions, RuntimePolicy } from "@orchestrator/core";
import type Dockerode from "dockerode";

/** Options of `DockerRuntime`: the agent operator's local policy. Only `allowedImages` is required. */
export interface DockerRuntimeConfig {
  /** A dockerode client (default: `new Dockerode()`, i.e. `DOCKER_HOST` or the local socket). */
  docker?: Dockerode;
  /**
   * Images servers may run: exact references or patterns (`orchestrator/*`
   * within one path segment, `registry.example.com/games/**` below). Empty:
   * nothing may run.
   */
  allowedImages: readonly string[];
  /** Directories beneath which instance directories (the only bind mount) must lie. */
  instanceRoots?: readonly string[];
  /** Further local policy (reserved env names, `sh -c`, maximum limits, host port range). */
  policy?: Omit<RuntimePolicy, "instanceRoots" | "allowedImages" | "allowEmptyCommand">;
  /**
   * Capabilities added back after dropping ALL, e.g. `["NET_BIND_SERVICE"]`.
   * Operator-only; capabilities that amount to root on the host are refused.
   */
  capAdd?: readonly string[];
  /** Process limit per container (default 512). */
  pidsLimit?: number;
  /** Where the instance directory is mounted, and the working directory (default `/data`). */
  mountPath?: string;
  /** Docker network of the containers (default `bridge`); host and container networks are refused. */
  network?: string;
  /** Host address published ports bind to (default: all). */
  hostIp?: string;
  /** User (`uid:gid`) servers run as inside the container (default: the image's). */
  user?: string;
  /** Mount the image read-only (a tmpfs at /tmp is added); default false. */
  readOnlyRootFilesystem?: boolean;
  /** Pull an allowed image that is missing locally (default) or refuse. */
  pull?: "missing" | "never";
  /**
   * Separates runtimes sharing one engine (default `default`): `list()`, exit
   * watching and re-attach only see containers of their own namespace.
   */
  namespace?: string;
  /** Container names are `<namePrefix><instanceId>` (default `orch-`). */
  namePrefix?: string;
  /** json-file log rotation of each container (default 10m × 3). */
  logRotation?: { maxSize: string; maxFiles: number };
  /** In-memory log backlog per instance (default 1000 lines / 1 MiB). */
  logBacklog?: LogBacklogOptions;
  /** Time source for exit timestamps (default: the system clock). */
  clock?: Clock;
  /**
   * Longest wait for the engine's answer to a query (ping, inspect, list,
   * signal, attach, the start of a log or event stream), default 5 000 ms. A
   * hung engine accepts connections and answers nothing; past this the call
   * fails with `UNAVAILABLE` instead of hanging the agent with it.
   */
  requestTimeoutMs?: number;
  /** The same for engine actions (create, start, remove, the start of a pull), default 30 000 ms. */
  actionTimeoutMs?: number;
}

/** Defaults of the engine-call deadlines (see `requestTimeoutMs` and `actionTimeoutMs`). */
export const DEFAULT_DOCKER_TIMEOUTS = Object.freeze({ requestMs: 5_000, actionMs: 30_000 });

/** Capabilities an operator may not add: each is as good as root on the host. */
export const REFUSED_CAPABILITIES: readonly string[] = Object.freeze([
  "ALL",
  "SYS_ADMIN",
  "SYS_MODULE",
  "SYS_RAWIO",
  "SYS_PTRACE",
  "SYS_BOOT",
  "SYS_TIME",
  "DAC_READ_SEARCH",
  "MAC_ADMIN",
  "MAC_OVERRIDE",
  "NET_ADMIN",
  "BPF",
  "PERFMON",
  "SYSLOG",
]);
