/**
 * Turns what a user filled in (a panel form, an API body) into the values of
 * one instance: every given value checked against the template's definitions,
 * defaults applied, built-ins added. Every problem is reported at once, each
 * with the variable's name and a message a form can show next to the field.
 */
import type { VariableDefinition } from "../domain/template.js";
import {
  TemplateInvalidError,
  ValidationError,
  type ValidationIssue,
} from "../errors/orchestrator-error.js";
import {
  type BuiltInVariableContext,
  builtInVariables,
  isBuiltInVariableName,
} from "./built-in-variables.js";
import { ResolvedVariables } from "./resolved-variables.js";
import { validateVariableDefinitions, valueProblem } from "./validate-variable-definitions.js";

/** Values as a form or an API body gives them; `null`, `undefined` and `""` mean "not given". */
export type VariableInput = Readonly<Record<string, string | number | boolean | null | undefined>>;

export interface ResolveVariablesOptions {
  /** The instance's built-ins (`INSTANCE_ID`, `PORT`, ...), as a context or ready-made values. */
  builtIns?: BuiltInVariableContext | ReadonlyMap<string, string>;
}

export type VariableCheckResult =
  | { ok: true; variables: ResolvedVariables }
  | { ok: false; issues: ValidationIssue[] };

/**
 * Definitions already found valid. Only frozen ones are remembered (a stored
 * template version's definition is frozen and reused for every instance):
 * anything else may have changed since and is validated again.
 */
const validDefinitions = new WeakSet<object>();

function isFrozenSchema(definitions: Readonly<Record<string, VariableDefinition>>): boolean {
  if (!Object.isFrozen(definitions)) return false;
  for (const definition of Object.values(definitions)) {
    if (!Object.isFrozen(definition)) return false;
    if (definition.values !== undefined && !Object.isFrozen(definition.values)) return false;
  }
  return true;
}

function assertValidDefinitions(definitions: Readonly<Record<string, VariableDefinition>>): void {
  if (validDefinitions.has(definitions)) return;
  const definitionIssues = validateVariableDefinitions(definitions);
  if (definitionIssues.length > 0) {
    throw new TemplateInvalidError(
      `invalid variable definitions: ${definitionIssues.map((i) => `${i.path} ${i.message}`).join("; ")}`,
      { details: { issues: definitionIssues } },
    );
  }
  if (isFrozenSchema(definitions)) validDefinitions.add(definitions);
}

/**
 * Checks `input` against `definitions` and returns either the resolved
 * variables or every problem found. Throws `TemplateInvalidError` when the
 * definitions themselves are invalid (that is the template's fault, not the user's).
 */
export function checkVariables(
  definitions: Readonly<Record<string, VariableDefinition>>,
  input: VariableInput,
  options: ResolveVariablesOptions = {},
): VariableCheckResult {
  assertValidDefinitions(definitions);
  const issues: ValidationIssue[] = [];
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return { ok: false, issues: [{ path: "variables", message: "must be an object" }] };
  }
  for (const name of Object.keys(input)) {
    if (Object.hasOwn(definitions, name)) continue;
    issues.push({
      path: `variables.${name}`,
      message: isBuiltInVariableName(name)
        ? "is set by the platform and cannot be given"
        : "is not declared by the template",
    });
  }
  const values: [string, string][] = [];
  const secrets: string[] = [];
  for (const [name, definition] of Object.entries(definitions)) {
    if (definition.secret) secrets.push(name);
    const given = Object.hasOwn(input, name) ? input[name] : undefined;
    const value = given === null || given === undefined || given === "" ? undefined : given;
    if (value === undefined) {
      if (definition.default !== undefined) {
        const checked = valueProblem(definition, definition.default);
        values.push([name, typeof checked === "string" ? "" : checked.text]);
      } else if (definition.required) {
        issues.push({ path: `variables.${name}`, message: "is required" });
      } else {
        // Declared but unset: substitutes as empty, so `${NAME:-fallback}` applies.
        values.push([name, ""]);
      }
      continue;
    }
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
      issues.push({ path: `variables.${name}`, message: "must be a string, number or boolean" });
      continue;
    }
    const checked = valueProblem(definition, value);
    if (typeof checked === "string") issues.push({ path: `variables.${name}`, message: checked });
    else values.push([name, checked.text]);
  }
  let builtIns: ReadonlyMap<string, string> = new Map();
  if (options.builtIns instanceof Map) builtIns = options.builtIns;
  else if (options.builtIns !== undefined) {
    try {
      builtIns = builtInVariables(options.builtIns as BuiltInVariableContext);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      issues.push(...error.issues);
    }
  }
  for (const name of builtIns.keys()) {
    if (!isBuiltInVariableName(name)) {
      issues.push({ path: `builtIns.${name}`, message: "is not a built-in variable name" });
    }
  }
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, variables: new ResolvedVariables([...values, ...builtIns], secrets) };
}

/**
 * Like `checkVariables`, but throws `ValidationError` (code `VALIDATION_FAILED`,
 * `issues` listing every problem) instead of returning them.
 */
export function resolveVariables(
  definitions: Readonly<Record<string, VariableDefinition>>,
  input: VariableInput,
  options: ResolveVariablesOptions = {},
): ResolvedVariables {
  const result = checkVariables(definitions, input, options);
  if (!result.ok) throw new ValidationError(result.issues);
  return result.variables;
}
