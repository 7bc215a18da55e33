/**
 * Checks the variable schema of a template (the `variables` object of
 * `template.json`): names, reserved names, built-in collisions, bounds, enum
 * values, patterns, and that each default satisfies its own definition.
 */
import type { VariableDefinition, VariableType } from "../domain/template.js";
import type { ValidationIssue } from "../errors/orchestrator-error.js";
import { isBuiltInVariableName } from "./built-in-variables.js";
import { variableNameProblem } from "./variable-name.js";

const TYPES: ReadonlySet<VariableType> = new Set([
  "string",
  "integer",
  "number",
  "boolean",
  "enum",
]);

/** Most variables a template may declare (forms and env stay readable). */
export const MAX_VARIABLES = 256;

const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  "type",
  "label",
  "description",
  "required",
  "default",
  "values",
  "pattern",
  "min",
  "max",
  "maxLength",
  "multiline",
  "secret",
]);

/** Compiled patterns by source: templates reuse a few patterns for every value checked. */
const compiledPatterns = new Map<string, RegExp>();
const MAX_COMPILED_PATTERNS = 1_000;

/**
 * Compiles a definition's `pattern` as a whole-value match (cached: the
 * result has no `g` or `y` flag, so sharing it is safe). Throws on a bad pattern.
 */
export function compileVariablePattern(pattern: string): RegExp {
  let compiled = compiledPatterns.get(pattern);
  if (compiled === undefined) {
    compiled = new RegExp(`^(?:${pattern})$`, "u");
    if (compiledPatterns.size >= MAX_COMPILED_PATTERNS) compiledPatterns.clear();
    compiledPatterns.set(pattern, compiled);
  }
  return compiled;
}

/**
 * Every problem of a variable schema at once, each with the path
 * `variables.<NAME>[.<field>]`. An empty array means the schema is valid.
 */
export function validateVariableDefinitions(
  definitions: Readonly<Record<string, VariableDefinition>>,
): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  if (typeof definitions !== "object" || definitions === null || Array.isArray(definitions)) {
    return [{ path: "variables", message: "must be an object" }];
  }
  const names = Object.keys(definitions);
  if (names.length > MAX_VARIABLES) {
    issues.push({ path: "variables", message: `declares more than ${MAX_VARIABLES} variables` });
  }
  for (const name of names) {
    const path = `variables.${name}`;
    const nameProblem = variableNameProblem(name);
    if (nameProblem) {
      issues.push({ path, message: nameProblem });
      continue;
    }
    if (isBuiltInVariableName(name)) {
      issues.push({ path, message: "is a built-in variable (set by the platform)" });
      continue;
    }
    const definition = definitions[name];
    if (typeof definition !== "object" || definition === null || Array.isArray(definition)) {
      issues.push({ path, message: "must be an object" });
      continue;
    }
    issues.push(...definitionIssues(path, definition));
  }
  return issues;
}

function definitionIssues(path: string, definition: VariableDefinition): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const add = (field: string, message: string) =>
    issues.push({ path: `${path}.${field}`, message });
  for (const field of Object.keys(definition)) {
    if (!KNOWN_FIELDS.has(field)) add(field, "is not a known field");
  }
  if (!TYPES.has(definition.type)) {
    add("type", "must be one of string, integer, number, boolean, enum");
    return issues;
  }
  for (const field of ["label", "description", "pattern"] as const) {
    if (definition[field] !== undefined && typeof definition[field] !== "string") {
      add(field, "must be a string");
    }
  }
  for (const field of ["required", "multiline", "secret"] as const) {
    if (definition[field] !== undefined && typeof definition[field] !== "boolean") {
      add(field, "must be a boolean");
    }
  }
  const numeric = definition.type === "integer" || definition.type === "number";
  for (const field of ["min", "max"] as const) {
    const bound = definition[field];
    if (bound === undefined) continue;
    if (!numeric) add(field, "applies only to integer and number variables");
    else if (typeof bound !== "number" || !Number.isFinite(bound)) add(field, "must be a number");
  }
  if (
    typeof definition.min === "number" &&
    typeof definition.max === "number" &&
    definition.min > definition.max
  ) {
    add("min", "must not be greater than max");
  }
  if (definition.maxLength !== undefined) {
    if (definition.type !== "string") add("maxLength", "applies only to string variables");
    else if (!Number.isInteger(definition.maxLength) || definition.maxLength < 0) {
      add("maxLength", "must be a non-negative integer");
    }
  }
  if (definition.multiline !== undefined && definition.type !== "string") {
    add("multiline", "applies only to string variables");
  }
  if (definition.type === "enum") {
    const values = definition.values;
    if (!Array.isArray(values) || values.length === 0) {
      add("values", "must list at least one allowed value");
    } else {
      if (values.some((value) => typeof value !== "string" || /[\r\n\0]/.test(value))) {
        add("values", "must be single-line strings");
      }
      if (new Set(values).size !== values.length) add("values", "must not repeat a value");
    }
  } else if (definition.values !== undefined) {
    add("values", "applies only to enum variables");
  }
  if (typeof definition.pattern === "string") {
    if (definition.type !== "string" && definition.type !== "enum") {
      add("pattern", "applies only to string and enum variables");
    } else {
      try {
        compileVariablePattern(definition.pattern);
      } catch {
        add("pattern", "is not a valid regular expression");
      }
    }
  }
  if (issues.length === 0 && definition.default !== undefined) {
    // The default must pass the same checks as a value a user types; its own
    // text is never echoed (it may be a secret's default).
    const problem = valueProblem(definition, definition.default);
    if (typeof problem === "string") add("default", `is invalid: ${problem}`);
  }
  return issues;
}

/**
 * Checks one given value against its definition and returns its canonical
 * text (what substitution writes), or a message saying what is wrong. Messages
 * never contain the value: it may be secret.
 */
export function valueProblem(
  definition: VariableDefinition,
  value: string | number | boolean,
): string | { text: string } {
  switch (definition.type) {
    case "string":
    case "enum": {
      if (typeof value !== "string") return "must be text";
      if (value.includes("\u0000")) return "must not contain NUL characters";
      if (definition.type === "enum" && !(definition.values ?? []).includes(value)) {
        return `must be one of: ${(definition.values ?? []).join(", ")}`;
      }
      if (!definition.multiline && /[\r\n]/.test(value)) return "must be a single line";
      if (definition.maxLength !== undefined && codePointLength(value) > definition.maxLength) {
        return `must be at most ${definition.maxLength} characters long`;
      }
      if (
        definition.pattern !== undefined &&
        !compileVariablePattern(definition.pattern).test(value)
      ) {
        return `must match the pattern ${definition.pattern}`;
      }
      return { text: value };
    }
    case "integer":
    case "number": {
      const number = toNumber(value, definition.type === "integer");
      if (number === undefined) {
        return definition.type === "integer" ? "must be a whole number" : "must be a number";
      }
      if (definition.min !== undefined && number < definition.min) {
        return `must be at least ${definition.min}`;
      }
      if (definition.max !== undefined && number > definition.max) {
        return `must be at most ${definition.max}`;
      }
      return { text: String(number) };
    }
    case "boolean": {
      if (value === true || value === "true") return { text: "true" };
      if (value === false || value === "false") return { text: "false" };
      return "must be true or false";
    }
  }
}

function toNumber(value: string | number | boolean, integer: boolean): number | undefined {
  let number: number;
  if (typeof value === "number") number = value;
  else if (
    typeof value === "string" &&
    /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(value.trim())
  ) {
    number = Number(value.trim());
  } else return undefined;
  if (!Number.isFinite(number)) return undefined;
  if (integer && !Number.isSafeInteger(number)) return undefined;
  return number;
}

function codePointLength(text: string): number {
  let length = 0;
  for (const _ of text) length += 1;
  return length;
}
