import type { Clock, LogBacklogOptions, RuntimePolicy } from "@orchestrator/core";

/** Options of `ProcessRuntime`; only `stateDirectory` is required. */
export interface ProcessRuntimeConfig {
  /**
   * Where the runtime keeps one folder per instance: its spec, pid and start
   * time, exit status, log files and stdin pipe. Must survive agent restarts
   * (that is how servers are found again); created with mode 0700.
   */
  stateDirectory: string;
  /** Directories beneath which instance working directories must lie (the agent's data dir). */
  instanceRoots?: readonly string[];
  /** Further local policy (reserved env names, `sh -c`, maximum limits, host port range). */
  policy?: Omit<RuntimePolicy, "instanceRoots" | "allowedImages" | "allowEmptyCommand">;
  /**
   * `PATH` given to every server (templates may not set it) and used to find
   * a program named without `/`. Default: the usual system directories.
   */
  path?: string;
  /** The POSIX shell that runs the exit-status shim (default `/bin/sh`). */
  shell?: string;
  /**
   * Resource limits through cgroup v2: `"auto"` (default) uses
   * `<cgroup2 mount>/orchestrator` when the memory controller is available and
   * writable; a path uses that (delegated) cgroup; `false` never limits.
   * Without a usable cgroup, `capabilities.supportsResourceLimits` is false.
   */
  cgroup?: "auto" | string | false;
  /** `pids.max` of each instance cgroup (default 1024). */
  pidsLimit?: number;
  /** How often exits of re-attached servers are polled (default 500 ms). */
  exitPollIntervalMs?: number;
  /** In-memory log backlog per instance (default 1000 lines / 1 MiB). */
  logBacklog?: LogBacklogOptions;
  /** A log file is truncated after reading once larger than this (default 16 MiB). */
  maxLogFileBytes?: number;
  /** Time source for log and exit timestamps (default: the system clock). */
  clock?: Clock;
}

/** Default `PATH` of servers. */
export const DEFAULT_SERVER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
