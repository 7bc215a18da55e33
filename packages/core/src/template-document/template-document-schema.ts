// biome-ignore-all lint/suspicious/noTemplateCurlyInString: descriptions mention ${VARIABLE} placeholders literally
/**
 * The `template.json` document: its JSON Schema (draft 2020-12, published as
 * data for the Brain's API and the panel's editor) and the checker that
 * `parseTemplateDocument` runs. Both come from the one description below.
 */

import type { Resources } from "../domain/resources.js";
import type {
  PortDefinition,
  ReadinessDefinition,
  RestartPolicy,
  RuntimeDefinition,
  StopDefinition,
  TemplateDefinition,
  TemplateFilesDefinition,
  VariableDefinition,
} from "../domain/template.js";
import type { ValidationIssue } from "../errors/orchestrator-error.js";
import {
  RESERVED_ENV_NAMES,
  RESERVED_VARIABLE_NAMES as RESERVED_NAMES_OF_VARIABLES,
  RESERVED_VARIABLE_PREFIXES as RESERVED_PREFIXES_OF_VARIABLES,
  VARIABLE_NAME_PATTERN as VARIABLE_NAME_REGEXP,
} from "../variables/variable-name.js";
import { MAX_NAME_LENGTH, NAME_PATTERN_SOURCE } from "./names.js";
import {
  array,
  boolean,
  type Checker,
  described,
  INVALID,
  integer,
  nullable,
  number,
  object,
  oneOf,
  record,
  SchemaDefinitions,
  scalar,
  string,
} from "./schema-builder.js";

/** The `$id` of the published schema. */
export const TEMPLATE_DOCUMENT_SCHEMA_ID = "urn:orchestrator:schema:template-document:1";

/** Largest accepted `template.json`, in bytes. */
export const MAX_TEMPLATE_DOCUMENT_BYTES = 1024 * 1024;

/** Variables every instance gets from the platform; a template cannot declare them. */
export const BUILT_IN_VARIABLES = [
  "INSTANCE_ID",
  "INSTANCE_NAME",
  "NODE_ID",
  "PORT",
  "MEMORY_MB",
  "CPU",
] as const;

/**
 * Names a template may not declare as variables: the variables module's
 * reserved names (the one list `checkVariables` enforces too) and built-ins.
 */
export const RESERVED_VARIABLE_NAMES: readonly string[] = [...RESERVED_NAMES_OF_VARIABLES];

/** Prefixes a template may not declare as variables (`PORT_<NAME>` are built-ins). */
export const RESERVED_VARIABLE_PREFIXES: readonly string[] = [
  ...RESERVED_PREFIXES_OF_VARIABLES,
  "PORT_",
];

/** How a variable name must look. */
export const VARIABLE_NAME_PATTERN = VARIABLE_NAME_REGEXP.source;

const RESERVED_PREFIX_PATTERN = `^(${RESERVED_VARIABLE_PREFIXES.join("|")})`;

/** Environment keys the runtimes refuse (`RESERVED_ENV_NAMES`): refused at registration already. */
const RESERVED_ENV_EXACT = RESERVED_ENV_NAMES.filter((entry) => !entry.endsWith("*"));
const RESERVED_ENV_PREFIXES = RESERVED_ENV_NAMES.filter((entry) => entry.endsWith("*")).map(
  (entry) => entry.slice(0, -1),
);

const defs = new SchemaDefinitions();

const name = defs.define(
  "name",
  described(
    string({
      maxLength: MAX_NAME_LENGTH,
      pattern: NAME_PATTERN_SOURCE,
      patternMessage:
        "must be lower-case segments matching ^[a-z0-9][a-z0-9._-]{0,63}$ separated by '/'",
      forbiddenPattern: "\\.\\.",
      forbiddenMessage: "must not contain '..'",
    }),
    "A template or layer name: lower-case segments separated by '/' (e.g. 'base/node-app').",
  ),
);

// No control characters, no `..`, no backslash, not absolute: globs and paths
// are matched against object keys, which obey the same rules.
const pathGlob = defs.define(
  "pathGlob",
  described(
    string({
      minLength: 1,
      maxLength: 512,
      pattern: "^[^/\\\\\\u0000-\\u001f\\u007f]([^\\\\\\u0000-\\u001f\\u007f]*)$",
      patternMessage: "must be a relative path or glob without backslashes or control characters",
      forbiddenPattern: "\\.\\.",
      forbiddenMessage: "must not contain '..'",
    }),
    "A path or glob relative to the instance directory (picomatch syntax, '/' separated).",
  ),
);

const argument = string({
  maxLength: 4096,
  pattern: "^[^\\u0000]*$",
  patternMessage: "must not contain NUL characters",
});

const argv = defs.define(
  "argv",
  described(
    array(argument, {
      minItems: 1,
      maxItems: 256,
      extra: { prefixItems: [{ type: "string", minLength: 1 }] },
    }),
    "A command as an argv array (never a shell string); values may hold ${VARIABLE} placeholders.",
  ),
);

const checkedArgv: Checker<string[]> = {
  schema: argv.schema,
  check(value, path, issues) {
    const result = argv.check(value, path, issues);
    if (result !== INVALID && result[0] === "") {
      issues.push({ path: `${path}[0]`, message: "the program must not be empty" });
      return INVALID;
    }
    return result;
  },
};

const variableName = string({
  pattern: VARIABLE_NAME_PATTERN,
  patternMessage: `must match ${VARIABLE_NAME_PATTERN}`,
  forbiddenPattern: RESERVED_PREFIX_PATTERN,
  forbiddenMessage: `must not start with ${RESERVED_VARIABLE_PREFIXES.join(", ")}`,
  forbidden: [...RESERVED_VARIABLE_NAMES, ...BUILT_IN_VARIABLES],
});

const ENV_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";

const envName = string({
  pattern: ENV_NAME_PATTERN,
  patternMessage: `must match ${ENV_NAME_PATTERN}`,
  forbiddenPattern: `^(${RESERVED_ENV_PREFIXES.join("|")})`,
  forbiddenMessage: `must not start with ${RESERVED_ENV_PREFIXES.join(", ")}`,
  forbidden: RESERVED_ENV_EXACT,
});

function regexProblem(source: string): string | null {
  try {
    new RegExp(source, "u");
    return null;
  } catch (error) {
    return `is not a valid regular expression: ${(error as Error).message}`;
  }
}

const regex = (maxLength: number) =>
  described(string({ minLength: 1, maxLength }), "An ECMAScript regular expression.");

function checkRegex(source: string | undefined, path: string, issues: ValidationIssue[]): void {
  if (source === undefined) return;
  const problem = regexProblem(source);
  if (problem) issues.push({ path, message: problem });
}

const VARIABLE_TYPES = ["string", "integer", "number", "boolean", "enum"] as const;

/** Which keywords make sense for which variable type (others are refused). */
const KEYWORDS_BY_TYPE: Record<(typeof VARIABLE_TYPES)[number], readonly string[]> = {
  string: ["pattern", "maxLength", "multiline"],
  integer: ["min", "max"],
  number: ["min", "max"],
  boolean: [],
  enum: ["values"],
};
const TYPED_KEYWORDS = ["pattern", "maxLength", "multiline", "min", "max", "values"] as const;

const DEFAULT_TYPE: Record<(typeof VARIABLE_TYPES)[number], JsonType> = {
  string: "string",
  integer: "integer",
  number: "number",
  boolean: "boolean",
  enum: "string",
};
type JsonType = "string" | "integer" | "number" | "boolean";

const variableDefinition = defs.define(
  "variable",
  object<VariableDefinition>(
    {
      type: { checker: oneOf(VARIABLE_TYPES), required: true },
      label: { checker: string({ maxLength: 100 }) },
      description: { checker: string({ maxLength: 2000 }) },
      required: { checker: boolean() },
      default: { checker: scalar() },
      values: {
        checker: array(string({ minLength: 1, maxLength: 200 }), {
          minItems: 1,
          maxItems: 200,
          unique: true,
        }),
      },
      pattern: { checker: regex(500) },
      min: { checker: number() },
      max: { checker: number() },
      maxLength: { checker: integer({ minimum: 1, maximum: 65_536 }) },
      multiline: { checker: boolean() },
      secret: { checker: boolean() },
    },
    {
      // The type-dependent rules, spelled out for JSON Schema tools.
      extra: {
        allOf: VARIABLE_TYPES.map((type) => {
          const refused = TYPED_KEYWORDS.filter((k) => !KEYWORDS_BY_TYPE[type].includes(k));
          const then: Record<string, unknown> = {
            properties: { default: { type: DEFAULT_TYPE[type] } },
          };
          if (refused.length) then.not = { anyOf: refused.map((k) => ({ required: [k] })) };
          if (type === "enum") then.required = ["values"];
          return { if: { required: ["type"], properties: { type: { const: type } } }, then };
        }),
      },
      rule: (variable, path, issues) => {
        for (const keyword of TYPED_KEYWORDS) {
          if (
            variable[keyword] !== undefined &&
            !KEYWORDS_BY_TYPE[variable.type].includes(keyword)
          ) {
            issues.push({
              path: `${path}.${keyword}`,
              message: `is not allowed for type '${variable.type}'`,
            });
          }
        }
        if (variable.type === "enum" && variable.values === undefined) {
          issues.push({ path: `${path}.values`, message: "is required for type 'enum'" });
        }
        checkRegex(variable.pattern, `${path}.pattern`, issues);
        if (
          variable.min !== undefined &&
          variable.max !== undefined &&
          variable.min > variable.max
        ) {
          issues.push({ path: `${path}.min`, message: "must not be greater than max" });
        }
        if (variable.default !== undefined) {
          const problem = variableValueProblem(variable, variable.default);
          if (problem) issues.push({ path: `${path}.default`, message: problem });
        }
      },
    },
  ),
);

/**
 * Why `value` is not acceptable for `variable`, or null when it is. Used for
 * defaults here; the variables module applies the same rules to given values.
 */
export function variableValueProblem(
  variable: VariableDefinition,
  value: string | number | boolean,
): string | null {
  switch (variable.type) {
    case "boolean":
      return typeof value === "boolean" ? null : "must be a boolean";
    case "integer":
    case "number": {
      if (typeof value !== "number" || !Number.isFinite(value)) return "must be a number";
      if (variable.type === "integer" && !Number.isInteger(value)) return "must be an integer";
      if (variable.min !== undefined && value < variable.min) {
        return `must be at least ${variable.min}`;
      }
      if (variable.max !== undefined && value > variable.max) {
        return `must be at most ${variable.max}`;
      }
      return null;
    }
    case "enum":
      if (typeof value !== "string") return "must be a string";
      return variable.values?.includes(value)
        ? null
        : `must be one of ${(variable.values ?? []).map((v) => `'${v}'`).join(", ")}`;
    case "string": {
      if (typeof value !== "string") return "must be a string";
      if (variable.maxLength !== undefined && [...value].length > variable.maxLength) {
        return `must be at most ${variable.maxLength} characters`;
      }
      if (!variable.multiline && /[\r\n]/.test(value)) return "must be a single line";
      if (value.includes("\u0000")) return "must not contain NUL characters";
      if (variable.pattern !== undefined && regexProblem(variable.pattern) === null) {
        if (!new RegExp(`^(?:${variable.pattern})$`, "u").test(value)) {
          return `must match ${variable.pattern}`;
        }
      }
      return null;
    }
  }
}

const filesDefinition = object<TemplateFilesDefinition>({
  substitute: {
    checker: described(
      array(pathGlob, { maxItems: 256 }),
      "Files whose content gets ${VARIABLE} substitution (binary files are never touched).",
    ),
  },
  link: {
    checker: described(
      array(pathGlob, { maxItems: 256 }),
      "Read-only shared files (big jars): hard-linked or reflinked instead of copied.",
    ),
  },
  merge: {
    checker: described(
      record(pathGlob, oneOf(["properties", "json", "yaml"]), { maxProperties: 256 }),
      "Files merged key by key across layers, by format.",
    ),
  },
});

const IMAGE_PATTERN =
  "^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$";

const runtimeDefinition = object<RuntimeDefinition>(
  {
    process: {
      checker: described(
        object<{ command: readonly string[] }>({
          command: { checker: checkedArgv, required: true },
        }),
        "Run as a child process of the agent.",
      ),
    },
    docker: {
      checker: described(
        object<{ image: string; command?: readonly string[] }>({
          image: {
            checker: string({
              maxLength: 255,
              pattern: IMAGE_PATTERN,
              patternMessage: "must be a Docker image reference such as 'org/name:tag'",
            }),
            required: true,
          },
          command: { checker: checkedArgv },
        }),
        "Run as a Docker container (the image must be on the agent's allow-list).",
      ),
    },
  },
  { minProperties: 1, minPropertiesMessage: "must declare at least one runtime (process, docker)" },
);

const portDefinition = object<PortDefinition>({
  name: {
    checker: string({
      pattern: "^[a-z][a-z0-9-]{0,31}$",
      patternMessage: "must match ^[a-z][a-z0-9-]{0,31}$",
    }),
    required: true,
  },
  protocol: { checker: oneOf(["tcp", "udp"]), default: "tcp" },
  port: {
    checker: described(
      integer({ minimum: 1, maximum: 65_535 }),
      "A fixed host port; taken from the node's range when absent.",
    ),
  },
});

const resourcesDefinition = object<Resources>({
  memoryMb: { checker: integer({ minimum: 1, maximum: 16_777_216 }), required: true },
  cpu: { checker: number({ exclusiveMinimum: 0, maximum: 1024 }), required: true },
  diskMb: { checker: integer({ minimum: 0, maximum: 1_073_741_824 }), required: true },
});

const readinessDefinition = object<ReadinessDefinition>(
  {
    log: {
      checker: described(regex(1000), "Ready when a log line matches this regular expression."),
    },
    tcp: {
      checker: described(
        string({ pattern: "^[a-z][a-z0-9-]{0,31}$" }),
        "Ready when this named port accepts TCP connections.",
      ),
    },
    timeoutSeconds: { checker: integer({ minimum: 1, maximum: 86_400 }), default: 60 },
  },
  {
    extra: { not: { required: ["log", "tcp"] } },
    rule: (readiness, path, issues) => {
      if (readiness.log !== undefined && readiness.tcp !== undefined) {
        issues.push({ path, message: "must use either 'log' or 'tcp', not both" });
      }
      checkRegex(readiness.log, `${path}.log`, issues);
    },
  },
);

const stopDefinition = object<StopDefinition>({
  input: {
    checker: described(
      nullable(
        string({
          maxLength: 1024,
          pattern: "^[^\\r\\n\\u0000]*$",
          patternMessage: "must be a single console line",
        }),
      ),
      "A console line written to stdin (e.g. 'stop'), or null to send the signal.",
    ),
    default: null,
  },
  signal: { checker: oneOf(["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP"]), default: "SIGTERM" },
  timeoutSeconds: { checker: integer({ minimum: 1, maximum: 3600 }), default: 10 },
});

const restartDefinition = object<RestartPolicy>({
  policy: { checker: oneOf(["never", "on-failure", "always"]), default: "never" },
  maxRestarts: { checker: integer({ minimum: 0, maximum: 1000 }), default: 3 },
  windowSeconds: { checker: integer({ minimum: 1, maximum: 86_400 }), default: 300 },
});

/** The checker for a whole document (used by `parseTemplateDocument`). */
export const templateDocumentChecker: Checker<TemplateDefinition> = object<TemplateDefinition>(
  {
    name: { checker: name, required: true },
    description: { checker: string({ maxLength: 2000 }) },
    layers: {
      checker: described(
        array(name, { minItems: 1, maxItems: 32, unique: true }),
        "Layer names, bottom first; files of a later layer win.",
      ),
      required: true,
    },
    variables: {
      checker: described(
        record(variableName, variableDefinition, { maxProperties: 128 }),
        "Variables the template accepts, shown as a form in the panel.",
      ),
      default: {},
    },
    files: { checker: filesDefinition },
    runtime: { checker: runtimeDefinition, required: true },
    env: {
      checker: described(
        record(
          envName,
          string({
            maxLength: 4096,
            pattern: "^[^\\u0000]*$",
            patternMessage: "must not contain NUL characters",
          }),
          { maxProperties: 256 },
        ),
        "Environment of the server; values may hold ${VARIABLE} placeholders.",
      ),
    },
    ports: {
      checker: described(array(portDefinition, { maxItems: 64 }), "Named ports of the server."),
      default: [],
    },
    resources: {
      checker: described(resourcesDefinition, "Memory (MiB), CPU (cores) and disk (MiB)."),
      required: true,
    },
    readiness: {
      checker: described(
        readinessDefinition,
        "When a started server counts as RUNNING: a log line, a TCP port, or (neither) as soon as it starts.",
      ),
      default: { timeoutSeconds: 60 },
    },
    stop: {
      checker: stopDefinition,
      default: { input: null, signal: "SIGTERM", timeoutSeconds: 10 },
    },
    restart: {
      checker: restartDefinition,
      default: { policy: "never", maxRestarts: 3, windowSeconds: 300 },
    },
    replaceLostAfterSeconds: {
      checker: described(
        integer({ minimum: 0, maximum: 604_800 }),
        "Re-place LOST instances on another node after this grace period; off when absent.",
      ),
    },
  },
  {
    ignoredKeys: { $schema: { type: "string", description: "Editors' schema hint; ignored." } },
    rule: (definition, _path, issues) => {
      const seen = new Map<string, number>();
      const fixed = new Map<string, number>();
      definition.ports.forEach((port, index) => {
        const first = seen.get(port.name);
        if (first !== undefined) {
          issues.push({ path: `ports[${index}].name`, message: `duplicates ports[${first}]` });
        } else seen.set(port.name, index);
        if (port.port !== undefined) {
          const key = `${port.protocol}/${port.port}`;
          const other = fixed.get(key);
          if (other !== undefined) {
            issues.push({ path: `ports[${index}].port`, message: `duplicates ports[${other}]` });
          } else fixed.set(key, index);
        }
      });
      const tcp = definition.readiness.tcp;
      if (tcp !== undefined) {
        const port = definition.ports.find((p) => p.name === tcp);
        if (!port) {
          issues.push({ path: "readiness.tcp", message: `names no declared port ('${tcp}')` });
        } else if (port.protocol !== "tcp") {
          issues.push({ path: "readiness.tcp", message: `port '${tcp}' is not a TCP port` });
        }
      }
    },
  },
);

/** The published JSON Schema (draft 2020-12) of `template.json`, as plain data. */
export const TEMPLATE_DOCUMENT_SCHEMA: JsonSchemaDocument = Object.freeze({
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: TEMPLATE_DOCUMENT_SCHEMA_ID,
  title: "Orchestrator template",
  description:
    "A template's template.json: layers, variables, runtime, ports, resources, readiness, stop and restart policy. Rules JSON Schema cannot express (unique port names, readiness.tcp naming a declared TCP port, regular expressions that compile, defaults within their bounds) are checked by parseTemplateDocument.",
  ...templateDocumentChecker.schema,
  $defs: defs.definitions,
});

/** A root JSON Schema document. */
export type JsonSchemaDocument = Readonly<Record<string, unknown>>;
