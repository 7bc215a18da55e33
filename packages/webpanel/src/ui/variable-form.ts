/**
 * The create-instance form is generated from the template's variable schema:
 * one field per variable (type → control), defaults pre-filled, and the API's
 * validation issues mapped back onto the field they are about.
 */
import type { VariableDefinition } from "@orchestrator/core";
import type { ApiIssue } from "./api-types.js";

export type FieldControl = "text" | "textarea" | "password" | "number" | "checkbox" | "select";

export interface FormField {
  name: string;
  label: string;
  description: string;
  control: FieldControl;
  required: boolean;
  options: readonly string[];
  min?: number;
  max?: number;
  step?: string;
  maxLength?: number;
  /** Initial value of the control (checkbox: boolean; others: string). */
  initial: string | boolean;
}

function controlOf(variable: VariableDefinition): FieldControl {
  switch (variable.type) {
    case "boolean":
      return "checkbox";
    case "integer":
    case "number":
      return "number";
    case "enum":
      return "select";
    default:
      if (variable.secret) return "password";
      return variable.multiline ? "textarea" : "text";
  }
}

/** The form's fields, in the template's declaration order. */
export function formFields(variables: Readonly<Record<string, VariableDefinition>>): FormField[] {
  return Object.entries(variables).map(([name, variable]) => {
    const control = controlOf(variable);
    const field: FormField = {
      name,
      label: variable.label ?? name,
      description: variable.description ?? "",
      control,
      required: variable.required === true && variable.default === undefined,
      options: variable.values ?? [],
      initial:
        control === "checkbox"
          ? variable.default === true
          : variable.default === undefined || variable.secret
            ? ""
            : String(variable.default),
    };
    if (variable.min !== undefined) field.min = variable.min;
    if (variable.max !== undefined) field.max = variable.max;
    if (variable.type === "integer") field.step = "1";
    if (variable.type === "number") field.step = "any";
    if (variable.maxLength !== undefined) field.maxLength = variable.maxLength;
    return field;
  });
}

/**
 * The `variables` body from the form's values. Empty text fields are left out
 * (the template's default applies). Numbers that do not parse are sent as
 * typed, so the API's message ("must be a number") is the one shown.
 */
export function variablesBody(
  fields: readonly FormField[],
  values: Readonly<Record<string, string | boolean>>,
): Record<string, string | number | boolean> {
  const body: Record<string, string | number | boolean> = {};
  for (const field of fields) {
    const value = values[field.name];
    if (value === undefined) continue;
    if (field.control === "checkbox") {
      body[field.name] = value === true;
      continue;
    }
    const text = String(value);
    if (text === "") continue;
    if (field.control === "number") {
      const parsed = Number(text);
      body[field.name] = text.trim() !== "" && Number.isFinite(parsed) ? parsed : text;
    } else body[field.name] = text;
  }
  return body;
}

/**
 * API issues keyed by form field: the variable name for `variables.X`, the
 * path itself otherwise (`name`, `username`, ...), `""` for the body as a
 * whole. Schema errors carry a `body.` prefix; service errors do not.
 */
export function issuesByField(issues: readonly ApiIssue[]): Record<string, string[]> {
  const byField: Record<string, string[]> = {};
  for (const issue of issues) {
    const path = issue.path.replace(/^body\.?/, "");
    const variable = /^variables\.(.+)$/.exec(path);
    const key = variable ? variable[1]! : path;
    const list = byField[key] ?? [];
    list.push(issue.message);
    byField[key] = list;
  }
  return byField;
}

/** The issues of `byField` that no field of the form shows, as "path: message" lines. */
export function unplacedIssues(
  byField: Record<string, string[]>,
  shown: readonly string[],
): string[] {
  return Object.entries(byField)
    .filter(([key]) => !shown.includes(key))
    .flatMap(([key, messages]) => messages.map((m) => (key ? `${key}: ${m}` : m)));
}
