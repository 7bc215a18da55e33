/**
 * The local policy every runtime applies to a spec before it runs anything,
 * whatever the Brain asked: argv commands only (no shell strings, no `sh -c`,
 * no launchers that would re-open what the policy closes), no reserved
 * environment names (`LD_*`, `PATH`, `NODE_OPTIONS`, `DOCKER_*`, ...), a working
 * directory beneath the agent's instance roots and never a system directory or
 * the Docker socket, images from the allow-list only, limits within bounds.
 */
import { realpath, stat } from "node:fs/promises";
import { posix } from "node:path";
import {
  OrchestratorError,
  type OrchestratorErrorOptions,
  ValidationError,
  type ValidationIssue,
} from "../errors/orchestrator-error.js";
import type {
  RuntimeInstanceSpec,
  RuntimePort,
  RuntimeStopSignal,
  RuntimeStopSpec,
} from "../ports/runtime.js";
import { isReservedEnvName, RESERVED_ENV_NAMES } from "../variables/variable-name.js";

/** A policy problem: `invalid` (malformed) or `forbidden` (well-formed but refused). */
export interface RuntimePolicyIssue extends ValidationIssue {
  kind: "invalid" | "forbidden";
}

/** A spec the local policy refuses (code `FORBIDDEN`); `issues` says every reason. */
export class RuntimePolicyError extends OrchestratorError {
  readonly issues: readonly RuntimePolicyIssue[];

  constructor(issues: readonly RuntimePolicyIssue[], options: OrchestratorErrorOptions = {}) {
    const summary = issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ");
    super("FORBIDDEN", `refused by the runtime policy: ${summary}`, {
      ...options,
      details: { issues, ...options.details },
    });
    this.name = "RuntimePolicyError";
    this.issues = issues;
  }
}

/** The agent's local policy; every field is optional and the defaults are strict. */
export interface RuntimePolicy {
  /**
   * Directories beneath which working directories must lie (the agent's data
   * directory). When empty or absent any absolute directory is accepted except
   * system directories.
   */
  instanceRoots?: readonly string[];
  /**
   * Image allow-list: exact references (`repo/name:tag`) or patterns where `*`
   * matches within one path segment (`orchestrator/*`) and a trailing `/**`
   * matches everything below. Set by image-based runtimes (an image is then
   * required); absent for runtimes without images (`image` is then ignored).
   */
  allowedImages?: readonly string[];
  /** Extra reserved environment names: exact names or prefixes written `NAME_*`. */
  reservedEnv?: readonly string[];
  /** Accept an empty command (image-based runtimes: "the image's default command"). */
  allowEmptyCommand?: boolean;
  /** Accept `sh -c '...'`-style commands (off: substituted values could become shell code). */
  allowShellCommand?: boolean;
  /** Largest memory limit a spec may ask for, in MiB. */
  maxMemoryMb?: number;
  /** Largest CPU limit a spec may ask for, in cores. */
  maxCpu?: number;
  /** Host ports a spec may bind (inclusive). */
  hostPortRange?: { from: number; to: number };
}

// The reserved environment names live with the variable names (one browser-safe
// source the template document schema shares); the runtime policy enforces them.
export { isReservedEnvName, RESERVED_ENV_NAMES };

// Shells whose `-c` turns one argument into code, and launchers that would
// run the real program with a changed environment, user or namespace.
const SHELLS = new Set(["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish"]);
const LAUNCHERS = new Set([
  "env",
  "sudo",
  "su",
  "doas",
  "pkexec",
  "setpriv",
  "nsenter",
  "unshare",
  "chroot",
  "capsh",
]);
// Characters that only make sense if the program name were meant for a shell.
const SHELL_SYNTAX = /[\s;&|$`<>(){}[\]*?!~'"\\#]/;

/**
 * Paths a working directory (the Docker bind mount) may never be, nor contain:
 * mounting any ancestor of these would hand the server the host.
 */
const SYSTEM_PATHS = [
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/lib",
  "/lib32",
  "/lib64",
  "/proc",
  "/root",
  "/run",
  "/sbin",
  "/sys",
  "/usr",
  "/var/lib/docker",
  "/var/lib/containerd",
  "/var/run",
  "/var/run/docker.sock",
  "/run/docker.sock",
  "/run/containerd",
];

const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const PORT_NAME = /^[a-z][a-z0-9-]{0,31}$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/;
// Registry host (with port), path components, then tag and/or digest.
const IMAGE_REFERENCE =
  /^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const CONTROL = /[\u0000-\u001f\u007f]/;
const STOP_SIGNALS: readonly RuntimeStopSignal[] = ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP"];
const SPEC_KEYS = new Set([
  "instanceId",
  "command",
  "env",
  "workingDirectory",
  "image",
  "ports",
  "resources",
  "labels",
  "stop",
]);

const LIMITS = {
  commandArgs: 256,
  argLength: 4096,
  envEntries: 256,
  envValueLength: 32 * 1024,
  envTotalLength: 256 * 1024,
  ports: 64,
  labels: 64,
  labelValueLength: 256,
  stopInputLength: 1024,
  stopTimeoutSeconds: 3600,
} as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** True when `path` equals `root` or lies beneath it (both absolute and normalized). */
export function isPathInside(path: string, root: string): boolean {
  if (root === "/") return path.startsWith("/");
  return path === root || path.startsWith(`${root}/`);
}

/** Adds `:latest` to a reference without tag or digest, as Docker does. */
export function normalizeImageReference(image: string): string {
  if (image.includes("@")) return image;
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  return lastSegment.includes(":") ? image : `${image}:latest`;
}

/** True when the image is allowed by one of `patterns` (see `RuntimePolicy.allowedImages`). */
export function isImageAllowed(image: string, patterns: readonly string[]): boolean {
  const reference = normalizeImageReference(image);
  return patterns.some((pattern) => {
    if (pattern.endsWith("/**")) return reference.startsWith(pattern.slice(0, -2));
    if (!pattern.includes("*")) return normalizeImageReference(pattern) === reference;
    const source = pattern
      .split("*")
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join("[^/]*");
    return new RegExp(`^${source}$`).test(reference);
  });
}

class Issues {
  readonly list: RuntimePolicyIssue[] = [];
  invalid(path: string, message: string): void {
    this.list.push({ kind: "invalid", path, message });
  }
  forbidden(path: string, message: string): void {
    this.list.push({ kind: "forbidden", path, message });
  }
}

function checkCommand(value: unknown, policy: RuntimePolicy, issues: Issues): string[] {
  if (!Array.isArray(value)) {
    issues.invalid("command", "must be an argv array of strings (never a shell string)");
    return [];
  }
  if (value.length > LIMITS.commandArgs) {
    issues.invalid("command", `at most ${LIMITS.commandArgs} arguments`);
  }
  const argv: string[] = [];
  value.forEach((arg, index) => {
    if (typeof arg !== "string") {
      issues.invalid(`command[${index}]`, "must be a string");
    } else if (arg.includes("\0")) {
      issues.invalid(`command[${index}]`, "must not contain NUL");
    } else if (arg.length > LIMITS.argLength) {
      issues.invalid(`command[${index}]`, `longer than ${LIMITS.argLength} characters`);
    } else {
      argv.push(arg);
    }
  });
  if (argv.length !== value.length) return argv;
  if (argv.length === 0) {
    if (!policy.allowEmptyCommand) issues.invalid("command", "must name a program");
    return argv;
  }
  const program = argv[0]!;
  if (program === "") {
    issues.invalid("command[0]", "must name a program");
    return argv;
  }
  if (SHELL_SYNTAX.test(program)) {
    issues.forbidden(
      "command[0]",
      "looks like a shell command line; commands are argv arrays and never run through a shell",
    );
    return argv;
  }
  let base = posix.basename(program);
  let rest = argv.slice(1);
  if (base === "busybox" && rest.length > 0) {
    base = posix.basename(rest[0]!);
    rest = rest.slice(1);
  }
  if (LAUNCHERS.has(base)) {
    issues.forbidden("command[0]", `'${base}' would bypass the runtime policy`);
  }
  if (SHELLS.has(base) && !policy.allowShellCommand) {
    // `sh script.sh` runs a file; `sh -c '...'` (or `-ec`, ...) runs a string as code.
    for (const arg of rest) {
      if (!arg.startsWith("-") || arg === "-" || arg === "--") break;
      if (!arg.startsWith("--") && arg.slice(1).includes("c")) {
        issues.forbidden("command", `'${base} -c' runs a string as shell code; use argv`);
        break;
      }
    }
  }
  return argv;
}

function checkEnv(
  value: unknown,
  policy: RuntimePolicy,
  issues: Issues,
): Record<string, string> | null {
  if (!isRecord(value)) {
    issues.invalid("env", "must be an object of strings");
    return null;
  }
  const entries = Object.entries(value);
  if (entries.length > LIMITS.envEntries) issues.invalid("env", `at most ${LIMITS.envEntries}`);
  const env: Record<string, string> = {};
  let total = 0;
  for (const [name, raw] of entries) {
    const path = `env.${name}`;
    if (!ENV_NAME.test(name)) {
      issues.invalid(path, "names are letters, digits and '_', not starting with a digit");
      continue;
    }
    if (isReservedEnvName(name, policy.reservedEnv)) {
      issues.forbidden(path, "reserved name: the runtime policy refuses it");
      continue;
    }
    if (typeof raw !== "string") {
      issues.invalid(path, "must be a string");
      continue;
    }
    if (raw.includes("\0")) issues.invalid(path, "must not contain NUL");
    else if (raw.length > LIMITS.envValueLength) issues.invalid(path, "value too long");
    total += name.length + raw.length + 2;
    env[name] = raw;
  }
  if (total > LIMITS.envTotalLength) issues.invalid("env", "environment too large");
  return env;
}

function checkWorkingDirectory(value: unknown, policy: RuntimePolicy, issues: Issues): string {
  if (typeof value !== "string" || value === "") {
    issues.invalid("workingDirectory", "must be an absolute path");
    return "";
  }
  if (value.includes("\0") || CONTROL.test(value)) {
    issues.invalid("workingDirectory", "must not contain control characters");
    return value;
  }
  if (!value.startsWith("/")) {
    issues.invalid("workingDirectory", "must be an absolute path");
    return value;
  }
  if (value.split("/").includes("..")) {
    issues.forbidden("workingDirectory", "must not contain '..'");
    return value;
  }
  const normalized = posix.normalize(value).replace(/(.)\/+$/, "$1");
  checkDirectoryPlacement(normalized, policy, issues);
  return normalized;
}

function checkDirectoryPlacement(directory: string, policy: RuntimePolicy, issues: Issues): void {
  if (directory === "/") {
    issues.forbidden("workingDirectory", "the root directory is never an instance directory");
    return;
  }
  for (const system of SYSTEM_PATHS) {
    // root's home may hold an operator's data folder (`/root/orchestrator/...`);
    // mounting it or an ancestor of it stays refused.
    const contains = isPathInside(system, directory);
    const within = system !== "/root" && isPathInside(directory, system);
    if (contains || within) {
      issues.forbidden("workingDirectory", `must not be or contain the system path ${system}`);
      return;
    }
  }
  if (/docker\.sock|containerd\.sock|podman\.sock/.test(directory)) {
    issues.forbidden("workingDirectory", "must not be an engine socket");
    return;
  }
  const roots = policy.instanceRoots ?? [];
  if (roots.length > 0) {
    const inside = roots.some((root) => {
      const normalizedRoot = posix.normalize(root).replace(/(.)\/+$/, "$1");
      return directory !== normalizedRoot && isPathInside(directory, normalizedRoot);
    });
    if (!inside) {
      issues.forbidden("workingDirectory", "must lie beneath the agent's instance directories");
    }
  }
}

function checkPorts(value: unknown, policy: RuntimePolicy, issues: Issues): RuntimePort[] {
  if (!Array.isArray(value)) {
    issues.invalid("ports", "must be an array");
    return [];
  }
  if (value.length > LIMITS.ports) issues.invalid("ports", `at most ${LIMITS.ports}`);
  const ports: RuntimePort[] = [];
  const names = new Set<string>();
  const bindings = new Set<string>();
  value.forEach((raw, index) => {
    const path = `ports[${index}]`;
    if (!isRecord(raw)) {
      issues.invalid(path, "must be an object");
      return;
    }
    for (const key of Object.keys(raw)) {
      if (!["name", "protocol", "hostPort", "containerPort"].includes(key)) {
        issues.forbidden(`${path}.${key}`, "unknown property");
      }
    }
    const { name, protocol, hostPort, containerPort } = raw;
    const isPort = (port: unknown): port is number =>
      typeof port === "number" && Number.isInteger(port) && port >= 1 && port <= 65535;
    if (typeof name !== "string" || !PORT_NAME.test(name)) {
      issues.invalid(`${path}.name`, "lower-case letters, digits and '-', up to 32");
    } else if (names.has(name)) {
      issues.invalid(`${path}.name`, `duplicate port name '${name}'`);
    } else names.add(name);
    if (protocol !== "tcp" && protocol !== "udp") {
      issues.invalid(`${path}.protocol`, "must be 'tcp' or 'udp'");
    }
    if (!isPort(hostPort)) {
      issues.invalid(`${path}.hostPort`, "must be an integer from 1 to 65535");
    } else {
      const range = policy.hostPortRange;
      if (range && (hostPort < range.from || hostPort > range.to)) {
        issues.forbidden(`${path}.hostPort`, `outside the node's range ${range.from}-${range.to}`);
      }
      const binding = `${hostPort}/${String(protocol)}`;
      if (bindings.has(binding)) issues.invalid(`${path}.hostPort`, `${binding} bound twice`);
      bindings.add(binding);
    }
    if (containerPort !== undefined && !isPort(containerPort)) {
      issues.invalid(`${path}.containerPort`, "must be an integer from 1 to 65535");
    }
    if (
      typeof name === "string" &&
      (protocol === "tcp" || protocol === "udp") &&
      isPort(hostPort)
    ) {
      ports.push(
        isPort(containerPort)
          ? { name, protocol, hostPort, containerPort }
          : { name, protocol, hostPort },
      );
    }
  });
  return ports;
}

function checkResources(value: unknown, policy: RuntimePolicy, issues: Issues) {
  if (!isRecord(value)) {
    issues.invalid("resources", "must be an object with memoryMb, cpu and diskMb");
    return { memoryMb: 0, cpu: 0, diskMb: 0 };
  }
  const positive = (key: "memoryMb" | "cpu" | "diskMb", allowZero: boolean): number => {
    const raw = value[key];
    if (typeof raw !== "number" || !Number.isFinite(raw) || raw < 0 || (!allowZero && raw === 0)) {
      issues.invalid(`resources.${key}`, allowZero ? "must be ≥ 0" : "must be > 0");
      return 0;
    }
    return raw;
  };
  for (const key of Object.keys(value)) {
    if (!["memoryMb", "cpu", "diskMb"].includes(key)) {
      issues.forbidden(`resources.${key}`, "unknown property");
    }
  }
  const memoryMb = positive("memoryMb", false);
  const cpu = positive("cpu", false);
  const diskMb = positive("diskMb", true);
  if (policy.maxMemoryMb !== undefined && memoryMb > policy.maxMemoryMb) {
    issues.forbidden("resources.memoryMb", `above the node's maximum of ${policy.maxMemoryMb}`);
  }
  if (policy.maxCpu !== undefined && cpu > policy.maxCpu) {
    issues.forbidden("resources.cpu", `above the node's maximum of ${policy.maxCpu}`);
  }
  return { memoryMb, cpu, diskMb };
}

function checkLabels(value: unknown, issues: Issues): Record<string, string> {
  if (!isRecord(value)) {
    issues.invalid("labels", "must be an object of strings");
    return {};
  }
  const entries = Object.entries(value);
  if (entries.length > LIMITS.labels) issues.invalid("labels", `at most ${LIMITS.labels}`);
  const labels: Record<string, string> = {};
  for (const [key, raw] of entries) {
    if (!LABEL_KEY.test(key)) {
      issues.invalid(`labels.${key}`, "keys are letters, digits, '_', '.', '/', '-'");
    } else if (typeof raw !== "string" || raw.length > LIMITS.labelValueLength) {
      issues.invalid(`labels.${key}`, `must be a string of at most ${LIMITS.labelValueLength}`);
    } else if (CONTROL.test(raw)) {
      issues.invalid(`labels.${key}`, "must not contain control characters");
    } else labels[key] = raw;
  }
  return labels;
}

function checkStop(value: unknown, issues: Issues): RuntimeStopSpec {
  const fallback: RuntimeStopSpec = { input: null, signal: "SIGTERM", timeoutSeconds: 10 };
  if (!isRecord(value)) {
    issues.invalid("stop", "must be an object with input, signal and timeoutSeconds");
    return fallback;
  }
  for (const key of Object.keys(value)) {
    if (!["input", "signal", "timeoutSeconds"].includes(key)) {
      issues.forbidden(`stop.${key}`, "unknown property");
    }
  }
  const { input, signal, timeoutSeconds } = value;
  if (input !== null && input !== undefined) {
    if (typeof input !== "string" || input.length > LIMITS.stopInputLength) {
      issues.invalid("stop.input", `must be null or one line of at most ${LIMITS.stopInputLength}`);
    } else if (CONTROL.test(input)) {
      issues.invalid("stop.input", "must be one line without control characters");
    }
  }
  if (!STOP_SIGNALS.includes(signal as RuntimeStopSignal)) {
    issues.invalid("stop.signal", `must be one of ${STOP_SIGNALS.join(", ")}`);
  }
  if (
    typeof timeoutSeconds !== "number" ||
    !Number.isFinite(timeoutSeconds) ||
    timeoutSeconds < 0 ||
    timeoutSeconds > LIMITS.stopTimeoutSeconds
  ) {
    issues.invalid("stop.timeoutSeconds", `must be from 0 to ${LIMITS.stopTimeoutSeconds}`);
  }
  return {
    input: typeof input === "string" ? input : null,
    signal: STOP_SIGNALS.includes(signal as RuntimeStopSignal)
      ? (signal as RuntimeStopSignal)
      : "SIGTERM",
    timeoutSeconds: typeof timeoutSeconds === "number" ? timeoutSeconds : 10,
  };
}

function throwIssues(issues: readonly RuntimePolicyIssue[]): never {
  if (issues.some((issue) => issue.kind === "forbidden")) throw new RuntimePolicyError(issues);
  throw new ValidationError(issues);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * Checks a spec from an untrusted source against the local policy and returns
 * a normalized, frozen copy holding only the known properties. Throws
 * `RuntimePolicyError` (`FORBIDDEN`) when anything is refused by policy, else
 * `ValidationError` (`VALIDATION_FAILED`) when something is malformed; either
 * lists every issue found.
 */
export function validateRuntimeSpec(
  spec: unknown,
  policy: RuntimePolicy = {},
): Readonly<RuntimeInstanceSpec> {
  const issues = new Issues();
  if (!isRecord(spec)) throwIssues([{ kind: "invalid", path: "", message: "must be an object" }]);
  for (const key of Object.keys(spec)) {
    if (!SPEC_KEYS.has(key)) {
      issues.forbidden(key, "unknown property: not part of a runtime spec, refused");
    }
  }
  const instanceId = spec.instanceId;
  if (
    typeof instanceId !== "string" ||
    !INSTANCE_ID.test(instanceId) ||
    instanceId.includes("..")
  ) {
    issues.invalid("instanceId", "letters, digits, '_', '.', '-' (up to 128), no '..'");
  }
  const command = checkCommand(spec.command, policy, issues);
  const env = checkEnv(spec.env, policy, issues);
  const workingDirectory = checkWorkingDirectory(spec.workingDirectory, policy, issues);
  let image: string | undefined;
  if (policy.allowedImages) {
    if (typeof spec.image !== "string" || spec.image === "") {
      issues.invalid("image", "an image is required by this runtime");
    } else if (spec.image.length > 255 || !IMAGE_REFERENCE.test(spec.image)) {
      issues.invalid("image", "not a valid image reference");
    } else if (!isImageAllowed(spec.image, policy.allowedImages)) {
      issues.forbidden("image", `'${spec.image}' is not on the agent's image allow-list`);
    } else image = spec.image;
  } else if (spec.image !== undefined && typeof spec.image !== "string") {
    issues.invalid("image", "must be a string");
  }
  const ports = checkPorts(spec.ports, policy, issues);
  const resources = checkResources(spec.resources, policy, issues);
  const labels = checkLabels(spec.labels, issues);
  const stop = checkStop(spec.stop, issues);
  if (issues.list.length > 0) throwIssues(issues.list);
  const result: RuntimeInstanceSpec = {
    instanceId: instanceId as string,
    command,
    env: env ?? {},
    workingDirectory,
    ports,
    resources,
    labels,
    stop,
  };
  if (image !== undefined) result.image = image;
  return deepFreeze(result);
}

/**
 * Resolves the working directory on disk (following symlinks) and checks it
 * again: a symlink inside the instance roots must not lead out of them. Returns
 * the real path, which runtimes use as cwd or bind-mount source.
 */
export async function resolveInstanceDirectory(
  directory: string,
  policy: RuntimePolicy = {},
): Promise<string> {
  let real: string;
  try {
    real = await realpath(directory);
  } catch (error) {
    throw new ValidationError(
      [{ path: "workingDirectory", message: "does not exist (prepare the instance first)" }],
      { cause: error },
    );
  }
  const info = await stat(real);
  if (!info.isDirectory()) {
    throw new ValidationError([{ path: "workingDirectory", message: "is not a directory" }]);
  }
  const roots = await Promise.all(
    (policy.instanceRoots ?? []).map((root) => realpath(root).catch(() => root)),
  );
  const issues = new Issues();
  checkDirectoryPlacement(real, { ...policy, instanceRoots: roots }, issues);
  if (issues.list.length > 0) {
    throwIssues(issues.list.map((issue) => ({ ...issue, message: `${issue.message} (${real})` })));
  }
  return real;
}
