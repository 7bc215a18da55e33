/**
 * Built-in variables: values the platform sets for every instance. A template
 * cannot declare them and a user cannot override them.
 */
import { ValidationError, type ValidationIssue } from "../errors/orchestrator-error.js";
import { VARIABLE_NAME_PATTERN } from "./variable-name.js";

export const BUILT_IN_VARIABLE_NAMES = [
  "INSTANCE_ID",
  "INSTANCE_NAME",
  "NODE_ID",
  "PORT",
  "MEMORY_MB",
  "CPU",
] as const;

export type BuiltInVariableName = (typeof BUILT_IN_VARIABLE_NAMES)[number];

/** Named ports become `PORT_<NAME>`; the whole prefix belongs to the platform. */
export const PORT_VARIABLE_PREFIX = "PORT_";

const BUILT_IN_SET: ReadonlySet<string> = new Set(BUILT_IN_VARIABLE_NAMES);

/** True for a built-in name, including every `PORT_<NAME>`. */
export function isBuiltInVariableName(name: string): boolean {
  return BUILT_IN_SET.has(name) || name.startsWith(PORT_VARIABLE_PREFIX);
}

/** What the platform knows about an instance when it prepares it. */
export interface BuiltInVariableContext {
  instanceId: string;
  instanceName: string;
  nodeId: string;
  /** The instance's ports in the template's order; the first one is also `PORT`. */
  ports: readonly { name: string; port: number }[];
  memoryMb: number;
  cpu: number;
}

/** `game` → `PORT_GAME`, `rcon-tcp` → `PORT_RCON_TCP`. */
export function portVariableName(portName: string): string {
  return `${PORT_VARIABLE_PREFIX}${portName.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}`;
}

// Identifiers end up in files, argv and env: no line breaks, no NUL.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE_TEXT = /[\u0000-\u001f\u007f]/;

/**
 * The built-in variables of one instance, in a stable order. Throws
 * `ValidationError` (every problem at once) when the context is unusable.
 */
export function builtInVariables(context: BuiltInVariableContext): Map<string, string> {
  const issues: ValidationIssue[] = [];
  const text = (path: string, value: unknown): string => {
    if (typeof value !== "string" || value.length === 0) {
      issues.push({ path, message: "must be a non-empty string" });
      return "";
    }
    if (UNSAFE_TEXT.test(value))
      issues.push({ path, message: "must not contain control characters" });
    return value;
  };
  const values = new Map<string, string>();
  values.set("INSTANCE_ID", text("builtIns.instanceId", context.instanceId));
  values.set("INSTANCE_NAME", text("builtIns.instanceName", context.instanceName));
  values.set("NODE_ID", text("builtIns.nodeId", context.nodeId));
  if (!Array.isArray(context.ports)) {
    issues.push({ path: "builtIns.ports", message: "must be an array" });
  } else {
    context.ports.forEach((entry, index) => {
      const path = `builtIns.ports[${index}]`;
      if (!Number.isInteger(entry.port) || entry.port < 1 || entry.port > 65_535) {
        issues.push({ path: `${path}.port`, message: "must be an integer from 1 to 65535" });
      }
      const name = typeof entry.name === "string" ? portVariableName(entry.name) : "";
      if (!VARIABLE_NAME_PATTERN.test(name) || name === PORT_VARIABLE_PREFIX) {
        issues.push({
          path: `${path}.name`,
          message: "does not give a valid PORT_<NAME> variable",
        });
        return;
      }
      if (values.has(name)) {
        issues.push({ path: `${path}.name`, message: `gives ${name} twice` });
        return;
      }
      if (index === 0) values.set("PORT", String(entry.port));
      values.set(name, String(entry.port));
    });
  }
  if (!Number.isFinite(context.memoryMb) || context.memoryMb < 0) {
    issues.push({ path: "builtIns.memoryMb", message: "must be a non-negative number" });
  }
  if (!Number.isFinite(context.cpu) || context.cpu < 0) {
    issues.push({ path: "builtIns.cpu", message: "must be a non-negative number" });
  }
  values.set("MEMORY_MB", String(context.memoryMb));
  values.set("CPU", String(context.cpu));
  if (issues.length > 0) throw new ValidationError(issues);
  return values;
}
