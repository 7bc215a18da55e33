import type { Resources, RuntimeKind } from "./resources.js";

/** Declared type of a template variable. */
export type VariableType = "string" | "integer" | "number" | "boolean" | "enum";

/** One variable a template accepts (shown as a form field in the panel). */
export interface VariableDefinition {
  type: VariableType;
  /** Short label for forms. */
  label?: string;
  /** Longer help text for forms. */
  description?: string;
  /** Must a value be given (when there is no default)? */
  required?: boolean;
  /** Used when no value is given. */
  default?: string | number | boolean;
  /** Allowed values for `enum`. */
  values?: readonly string[];
  /** A regular expression a string value must match (whole value). */
  pattern?: string;
  /** Bounds for `integer` and `number`. */
  min?: number;
  max?: number;
  /** Maximum length for `string`. */
  maxLength?: number;
  /** Allow CR/LF in a string value; refused otherwise. */
  multiline?: boolean;
  /** Never logged, never returned by the API in clear. */
  secret?: boolean;
}

export type PortProtocol = "tcp" | "udp";

/** A named port of a template (`game`, `query`, `rcon`, ...). */
export interface PortDefinition {
  name: string;
  protocol: PortProtocol;
  /** A fixed host port; dynamic (taken from the node's range) when absent. */
  port?: number;
}

/** How the runtime runs the server. Commands are argv arrays, never shell strings. */
export interface RuntimeDefinition {
  process?: { command: readonly string[] };
  docker?: { image: string; command?: readonly string[] };
}

/** When a started server counts as RUNNING (ready). */
export interface ReadinessDefinition {
  /** A regular expression matched against each log line. */
  log?: string;
  /** A named port that must accept TCP connections. */
  tcp?: string;
  /** Give up (FAILED, start timed out) after this many seconds. */
  timeoutSeconds: number;
}

/** How a server is stopped gracefully before it is killed. */
export interface StopDefinition {
  /** A console line written to stdin (e.g. `stop`), or null to send a signal. */
  input: string | null;
  signal: "SIGTERM" | "SIGINT" | "SIGQUIT" | "SIGHUP";
  timeoutSeconds: number;
}

export type RestartPolicyKind = "never" | "on-failure" | "always";

/** What follows a crash; the crash-loop guard gives up after `maxRestarts` in `windowSeconds`. */
export interface RestartPolicy {
  policy: RestartPolicyKind;
  maxRestarts: number;
  windowSeconds: number;
}

/** Per-path file handling inside the merged instance directory (globs). */
export interface TemplateFilesDefinition {
  /** Files whose content gets variable substitution. */
  substitute?: readonly string[];
  /** Read-only shared files, hardlinked or reflinked instead of copied. */
  link?: readonly string[];
  /** Key-level merge across layers, by format. */
  merge?: Readonly<Record<string, "properties" | "json" | "yaml">>;
}

/** The body of one immutable template version (`template.json`). */
export interface TemplateDefinition {
  name: string;
  description?: string;
  /** Ordered layer names, bottom first; a later layer wins. */
  layers: readonly string[];
  variables: Readonly<Record<string, VariableDefinition>>;
  files?: TemplateFilesDefinition;
  runtime: RuntimeDefinition;
  /** Environment of the server; values may hold `${VARIABLE}` placeholders. */
  env?: Readonly<Record<string, string>>;
  ports: readonly PortDefinition[];
  resources: Resources;
  readiness: ReadinessDefinition;
  stop: StopDefinition;
  restart: RestartPolicy;
  /** Opt-in re-placement of LOST instances after this grace period; off when absent. */
  replaceLostAfterSeconds?: number;
}

/** A stored template version. */
export interface TemplateVersion {
  templateName: string;
  /** 1, 2, 3, ... never reused. */
  version: number;
  definition: TemplateDefinition;
  /** Digest of the canonical definition, to tell whether a push changed anything. */
  digest: string;
  createdAt: Date;
}

/** A template: a name and its versions; the latest is used for new instances. */
export interface Template {
  name: string;
  description: string;
  latestVersion: number;
  createdAt: Date;
  updatedAt: Date;
}

/** The runtimes a template can run on, from its definition. */
export function templateRuntimes(definition: TemplateDefinition): RuntimeKind[] {
  return Object.entries(definition.runtime)
    .filter(([, spec]) => spec !== undefined)
    .map(([kind]) => kind);
}
