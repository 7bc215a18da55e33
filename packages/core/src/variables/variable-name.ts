/**
 * Variable names: what a template may declare. Names are upper-case identifiers
 * so a placeholder can never be confused with shell, Java or YAML syntax in
 * lower case, and reserved names keep templates away from the variables that
 * change how a process loads code or finds programs.
 */

/** A variable name: upper-case letters, digits and `_`, not starting with a digit, ≤ 64 bytes. */
export const VARIABLE_NAME_PATTERN = /^[A-Z_][A-Z0-9_]{0,63}$/;

/** Names a template may never declare (environment a runtime owns or that injects code). */
export const RESERVED_VARIABLE_NAMES: ReadonlySet<string> = new Set([
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "PWD",
  "OLDPWD",
  "IFS",
  "ENV",
  "BASH_ENV",
  "CDPATH",
  "SHELLOPTS",
  "BASHOPTS",
  "PS4",
  "PROMPT_COMMAND",
  "TMPDIR",
  "HOSTNAME",
  "NODE_OPTIONS",
  "NODE_PATH",
  "NODE_EXTRA_CA_CERTS",
  "NODE_TLS_REJECT_UNAUTHORIZED",
  "PYTHONPATH",
  "PYTHONSTARTUP",
  "PYTHONHOME",
  "PERL5LIB",
  "PERL5OPT",
  "RUBYLIB",
  "RUBYOPT",
  "JAVA_TOOL_OPTIONS",
  "_JAVA_OPTIONS",
  "JDK_JAVA_OPTIONS",
  "GCONV_PATH",
  "HOSTALIASES",
  "LOCALDOMAIN",
  "RES_OPTIONS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "ALL_PROXY",
  "NO_PROXY",
]);

/**
 * Reserved prefixes: the dynamic loader (`LD_`, `DYLD_`), Docker's client
 * configuration, Orchestrator's own configuration (`ORCH_`: agent and brain
 * settings must never be reachable from a template) and exported shell functions.
 */
export const RESERVED_VARIABLE_PREFIXES: readonly string[] = [
  "LD_",
  "DYLD_",
  "DOCKER_",
  "ORCH_",
  "BASH_FUNC_",
];

/** Why `name` is reserved, or undefined when it is not. */
export function reservedNameProblem(name: string): string | undefined {
  if (RESERVED_VARIABLE_NAMES.has(name)) return "is a reserved name";
  for (const prefix of RESERVED_VARIABLE_PREFIXES) {
    if (name.startsWith(prefix)) return `is reserved (names starting with ${prefix})`;
  }
  return undefined;
}

/** Why `name` cannot be a variable name, or undefined when it can. */
export function variableNameProblem(name: string): string | undefined {
  if (!VARIABLE_NAME_PATTERN.test(name)) {
    return "must match ^[A-Z_][A-Z0-9_]{0,63}$ (upper-case letters, digits and _)";
  }
  return reservedNameProblem(name);
}

/** True when `name` is syntactically a variable name (reserved or not). */
export function isVariableName(name: string): boolean {
  return VARIABLE_NAME_PATTERN.test(name);
}

/**
 * Environment names no template may set. They change how programs are loaded
 * or interpreted (`LD_PRELOAD`, `NODE_OPTIONS`, `BASH_ENV`), which engine a
 * tool talks to (`DOCKER_*`), or belong to the agent (`ORCH_*`). `PATH` is set
 * by the runtime itself. Entries ending in `*` are prefixes.
 */
export const RESERVED_ENV_NAMES: readonly string[] = Object.freeze([
  "PATH",
  "LD_*",
  "DYLD_*",
  "NODE_OPTIONS",
  "NODE_PATH",
  "NODE_EXTRA_CA_CERTS",
  "DOCKER_*",
  "ORCH_*",
  "BASH_ENV",
  "ENV",
  "IFS",
  "SHELLOPTS",
  "BASHOPTS",
  "PS4",
  "GCONV_PATH",
  "HOSTALIASES",
  "LOCALDOMAIN",
  "RES_OPTIONS",
  "MALLOC_*",
  "GLIBC_TUNABLES",
]);

/** True when `name` is reserved by `RESERVED_ENV_NAMES` or the extra entries. */
export function isReservedEnvName(name: string, extra: readonly string[] = []): boolean {
  const upper = name.toUpperCase();
  for (const entry of [...RESERVED_ENV_NAMES, ...extra]) {
    const pattern = entry.toUpperCase();
    if (pattern.endsWith("*") ? upper.startsWith(pattern.slice(0, -1)) : upper === pattern) {
      return true;
    }
  }
  return false;
}
