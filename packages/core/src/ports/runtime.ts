import type { Resources } from "../domain/resources.js";
import type { Plugin } from "./plugin.js";

/** What a runtime needs to run one instance. Commands are argv arrays, never shell strings. */
export interface RuntimeInstanceSpec {
  instanceId: string;
  /** argv: the program and its arguments. */
  command: readonly string[];
  /** Exactly the environment of the server (nothing is inherited from the agent). */
  env: Readonly<Record<string, string>>;
  /** The instance directory (the server's working directory / only mount). */
  workingDirectory: string;
  /** Docker image (ignored by runtimes without images). */
  image?: string;
  /** Named ports: host port given by the scheduler, container port when it differs. */
  ports: readonly {
    name: string;
    protocol: "tcp" | "udp";
    hostPort: number;
    containerPort?: number;
  }[];
  resources: Resources;
  /** Labels used to find the instance again after an agent restart. */
  labels: Readonly<Record<string, string>>;
  /** How to stop gracefully. */
  stop: { input: string | null; signal: NodeJS.Signals; timeoutSeconds: number };
}

export type RuntimeInstanceStatus = "created" | "running" | "exited";

/** What a runtime knows about one instance. */
export interface RuntimeInstanceInfo {
  instanceId: string;
  status: RuntimeInstanceStatus;
  labels: Readonly<Record<string, string>>;
  /** Process id or container id, for display. */
  handle: string;
  startedAt: Date | null;
  exitCode: number | null;
  signal: string | null;
}

export interface RuntimeLogLine {
  stream: "stdout" | "stderr";
  line: string;
  at: Date;
}

export interface RuntimeStats {
  /** CPU usage in cores (1.5 = one and a half cores busy). */
  cpu: number;
  memoryBytes: number;
  networkRxBytes?: number;
  networkTxBytes?: number;
  diskBytes?: number;
}

export interface RuntimeExit {
  instanceId: string;
  exitCode: number | null;
  signal: string | null;
  at: Date;
}

/** Declared abilities of a runtime; missing ones default to false. */
export interface RuntimeCapabilities {
  supportsStats: boolean;
  supportsInput: boolean;
  supportsResourceLimits: boolean;
}

export const DEFAULT_RUNTIME_CAPABILITIES: RuntimeCapabilities = {
  supportsStats: false,
  supportsInput: false,
  supportsResourceLimits: false,
};

/**
 * Runs game servers (as processes, containers, ...). Instances are found again
 * after an agent restart by their labels (`list`), never by in-memory maps.
 */
export interface Runtime extends Plugin {
  /** A short name (`process`, `docker`) matched against templates' runtime specs. */
  readonly kind: string;
  readonly capabilities: RuntimeCapabilities;

  /** Creates (does not start) an instance. Refuses specs that break the local policy. */
  create(
    spec: RuntimeInstanceSpec,
    options?: { signal?: AbortSignal },
  ): Promise<RuntimeInstanceInfo>;
  /** Starts a created or exited instance. */
  start(instanceId: string): Promise<RuntimeInstanceInfo>;
  /** Graceful stop: stop input or signal, then kill after the stop timeout. */
  stop(instanceId: string): Promise<RuntimeInstanceInfo>;
  /** Kills at once. */
  kill(instanceId: string): Promise<RuntimeInstanceInfo>;
  /** Removes the instance (kills it first if needed); leaves no process or container. */
  remove(instanceId: string): Promise<void>;
  /** The instance, or null when the runtime does not know it. */
  inspect(instanceId: string): Promise<RuntimeInstanceInfo | null>;
  /** Every instance whose labels include all of `labels`. */
  list(labels?: Readonly<Record<string, string>>): Promise<RuntimeInstanceInfo[]>;
  /** Recent log lines (`tail`), then new ones while `follow` is set, until `signal` aborts. */
  logs(
    instanceId: string,
    options?: { tail?: number; follow?: boolean; signal?: AbortSignal },
  ): Promise<AsyncIterable<RuntimeLogLine>>;
  /** Resource usage now (requires `supportsStats`). */
  stats(instanceId: string): Promise<RuntimeStats>;
  /** Writes one console line to the server's stdin (requires `supportsInput`). */
  sendInput(instanceId: string, line: string): Promise<void>;
  /** Calls `listener` on every exit; returns the function that unsubscribes it. */
  onExit(listener: (exit: RuntimeExit) => void): () => void;
}
