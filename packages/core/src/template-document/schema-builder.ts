/**
 * A tiny typed schema builder: each combinator yields both a JSON Schema
 * (draft 2020-12) fragment and a checker that validates a value against the
 * same rules, listing every problem at once. Describing each field once keeps
 * the published schema and the validator from drifting apart; rules that JSON
 * Schema cannot say (a readiness port must be declared) are `refine` steps.
 */
import type { ValidationIssue } from "../errors/orchestrator-error.js";

/** A JSON Schema fragment (plain JSON data). */
export type JsonSchema = { readonly [keyword: string]: unknown };

/** Returned by a checker when the value is invalid (its issues were recorded). */
export const INVALID: unique symbol = Symbol("invalid");

export interface Checker<T> {
  /** The JSON Schema for this value. */
  readonly schema: JsonSchema;
  /** Validates `value`, records problems under `path`, returns the normalised value or INVALID. */
  check(value: unknown, path: string, issues: ValidationIssue[]): T | typeof INVALID;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** The path of a child: `a.b` for identifiers, `a["x.y"]` otherwise, `a[3]` for indexes. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  if (IDENTIFIER.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${JSON.stringify(key)}]`;
}

function where(path: string): string {
  return path || "(document)";
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

/** Adds a `description` (and optional extra keywords) to a checker's schema. */
export function described<T>(checker: Checker<T>, description: string, extra: JsonSchema = {}) {
  return { ...checker, schema: { ...checker.schema, description, ...extra } };
}

/** Extra validation that JSON Schema cannot express; push issues, return nothing. */
export function refine<T>(
  checker: Checker<T>,
  rule: (value: T, path: string, issues: ValidationIssue[]) => void,
  schema: JsonSchema = checker.schema,
): Checker<T> {
  return {
    schema,
    check(value, path, issues) {
      const result = checker.check(value, path, issues);
      if (result === INVALID) return INVALID;
      const before = issues.length;
      rule(result, path, issues);
      return issues.length === before ? result : INVALID;
    },
  };
}

export interface StringOptions {
  minLength?: number;
  maxLength?: number;
  /** ECMAScript regular expression source (the JSON Schema `pattern` dialect). */
  pattern?: string;
  /** Human wording for a pattern mismatch. */
  patternMessage?: string;
  /** The value must NOT match this pattern (`not: { pattern }`). */
  forbiddenPattern?: string;
  forbiddenMessage?: string;
  /** Values refused although they match (`not: { enum }`). */
  forbidden?: readonly string[];
}

export function string(options: StringOptions = {}): Checker<string> {
  const pattern = options.pattern === undefined ? null : new RegExp(options.pattern, "u");
  const forbiddenPattern =
    options.forbiddenPattern === undefined ? null : new RegExp(options.forbiddenPattern, "u");
  const nots: JsonSchema[] = [];
  if (options.forbiddenPattern !== undefined) nots.push({ pattern: options.forbiddenPattern });
  if (options.forbidden?.length) nots.push({ enum: options.forbidden });
  const schema: Record<string, unknown> = { type: "string" };
  if (options.minLength !== undefined) schema.minLength = options.minLength;
  if (options.maxLength !== undefined) schema.maxLength = options.maxLength;
  if (options.pattern !== undefined) schema.pattern = options.pattern;
  if (nots.length === 1) schema.not = nots[0];
  if (nots.length > 1) schema.not = { anyOf: nots };
  return {
    schema,
    check(value, path, issues) {
      if (typeof value !== "string") {
        issues.push({ path: where(path), message: `must be a string, not ${describeType(value)}` });
        return INVALID;
      }
      const before = issues.length;
      // JSON Schema counts code points, not UTF-16 units.
      const length = [...value].length;
      if (options.minLength !== undefined && length < options.minLength) {
        issues.push({
          path: where(path),
          message:
            options.minLength === 1
              ? "must not be empty"
              : `must be at least ${options.minLength} characters`,
        });
      }
      if (options.maxLength !== undefined && length > options.maxLength) {
        issues.push({
          path: where(path),
          message: `must be at most ${options.maxLength} characters`,
        });
      }
      if (pattern && !pattern.test(value)) {
        issues.push({
          path: where(path),
          message: options.patternMessage ?? `must match ${options.pattern}`,
        });
      }
      if (forbiddenPattern?.test(value)) {
        issues.push({
          path: where(path),
          message: options.forbiddenMessage ?? `must not match ${options.forbiddenPattern}`,
        });
      }
      if (options.forbidden?.includes(value)) {
        issues.push({ path: where(path), message: `'${value}' is reserved` });
      }
      return issues.length === before ? value : INVALID;
    },
  };
}

export interface NumberOptions {
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
}

function numeric(kind: "integer" | "number", options: NumberOptions): Checker<number> {
  const schema: Record<string, unknown> = { type: kind };
  if (options.minimum !== undefined) schema.minimum = options.minimum;
  if (options.exclusiveMinimum !== undefined) schema.exclusiveMinimum = options.exclusiveMinimum;
  if (options.maximum !== undefined) schema.maximum = options.maximum;
  return {
    schema,
    check(value, path, issues) {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        issues.push({ path: where(path), message: `must be a number, not ${describeType(value)}` });
        return INVALID;
      }
      if (kind === "integer" && !Number.isInteger(value)) {
        issues.push({ path: where(path), message: "must be an integer" });
        return INVALID;
      }
      const before = issues.length;
      if (options.minimum !== undefined && value < options.minimum) {
        issues.push({ path: where(path), message: `must be at least ${options.minimum}` });
      }
      if (options.exclusiveMinimum !== undefined && value <= options.exclusiveMinimum) {
        issues.push({
          path: where(path),
          message: `must be greater than ${options.exclusiveMinimum}`,
        });
      }
      if (options.maximum !== undefined && value > options.maximum) {
        issues.push({ path: where(path), message: `must be at most ${options.maximum}` });
      }
      return issues.length === before ? value : INVALID;
    },
  };
}

export function integer(options: NumberOptions = {}): Checker<number> {
  return numeric("integer", options);
}

export function number(options: NumberOptions = {}): Checker<number> {
  return numeric("number", options);
}

export function boolean(): Checker<boolean> {
  return {
    schema: { type: "boolean" },
    check(value, path, issues) {
      if (typeof value === "boolean") return value;
      issues.push({ path: where(path), message: `must be a boolean, not ${describeType(value)}` });
      return INVALID;
    },
  };
}

/** One of a fixed list of strings. */
export function oneOf<const V extends string>(values: readonly V[]): Checker<V> {
  return {
    schema: { enum: values },
    check(value, path, issues) {
      if (typeof value === "string" && (values as readonly string[]).includes(value)) {
        return value as V;
      }
      issues.push({
        path: where(path),
        message: `must be one of ${values.map((v) => `'${v}'`).join(", ")}`,
      });
      return INVALID;
    },
  };
}

/** A string, a finite number or a boolean. */
export function scalar(): Checker<string | number | boolean> {
  return {
    schema: { type: ["string", "number", "boolean"] },
    check(value, path, issues) {
      if (
        typeof value === "string" ||
        typeof value === "boolean" ||
        (typeof value === "number" && Number.isFinite(value))
      ) {
        return value;
      }
      issues.push({
        path: where(path),
        message: `must be a string, a number or a boolean, not ${describeType(value)}`,
      });
      return INVALID;
    },
  };
}

/** The value or null. */
export function nullable<T>(checker: Checker<T>): Checker<T | null> {
  return {
    schema: { anyOf: [checker.schema, { type: "null" }] },
    check(value, path, issues) {
      return value === null ? null : checker.check(value, path, issues);
    },
  };
}

export interface ArrayOptions {
  minItems?: number;
  maxItems?: number;
  /** Items must be distinct (JSON Schema `uniqueItems`; compared as JSON). */
  unique?: boolean;
  /** Extra keywords (e.g. `prefixItems`). */
  extra?: JsonSchema;
}

export function array<T>(item: Checker<T>, options: ArrayOptions = {}): Checker<T[]> {
  const schema: Record<string, unknown> = { type: "array", items: item.schema };
  if (options.minItems !== undefined) schema.minItems = options.minItems;
  if (options.maxItems !== undefined) schema.maxItems = options.maxItems;
  if (options.unique) schema.uniqueItems = true;
  Object.assign(schema, options.extra);
  return {
    schema,
    check(value, path, issues) {
      if (!Array.isArray(value)) {
        issues.push({ path: where(path), message: `must be an array, not ${describeType(value)}` });
        return INVALID;
      }
      const before = issues.length;
      if (options.minItems !== undefined && value.length < options.minItems) {
        issues.push({
          path: where(path),
          message:
            options.minItems === 1
              ? "must not be empty"
              : `must have at least ${options.minItems} items`,
        });
      }
      if (options.maxItems !== undefined && value.length > options.maxItems) {
        issues.push({ path: where(path), message: `must have at most ${options.maxItems} items` });
        return INVALID; // don't list problems of thousands of items
      }
      const result: T[] = [];
      const seen = new Map<string, number>();
      value.forEach((element, index) => {
        const checked = item.check(element, childPath(path, index), issues);
        if (checked !== INVALID) result.push(checked);
        if (options.unique) {
          const key = JSON.stringify(element);
          const first = seen.get(key);
          if (first === undefined) seen.set(key, index);
          else {
            issues.push({
              path: childPath(path, index),
              message: `duplicates item ${first}`,
            });
          }
        }
      });
      return issues.length === before ? result : INVALID;
    },
  };
}

export interface RecordOptions {
  maxProperties?: number;
}

/** An object used as a map: every key checked by `key`, every value by `value`. */
export function record<V>(
  key: Checker<string>,
  value: Checker<V>,
  options: RecordOptions = {},
): Checker<Record<string, V>> {
  const schema: Record<string, unknown> = {
    type: "object",
    propertyNames: key.schema,
    additionalProperties: value.schema,
  };
  if (options.maxProperties !== undefined) schema.maxProperties = options.maxProperties;
  return {
    schema,
    check(input, path, issues) {
      if (!isPlainObject(input)) {
        issues.push({
          path: where(path),
          message: `must be an object, not ${describeType(input)}`,
        });
        return INVALID;
      }
      const entries = Object.entries(input);
      if (options.maxProperties !== undefined && entries.length > options.maxProperties) {
        issues.push({
          path: where(path),
          message: `must have at most ${options.maxProperties} entries`,
        });
        return INVALID;
      }
      const before = issues.length;
      const result: Record<string, V> = {};
      for (const [name, element] of entries) {
        const at = childPath(path, name);
        const checkedKey = key.check(name, at, issues);
        const checked = value.check(element, at, issues);
        if (checkedKey === INVALID || checked === INVALID) continue;
        // defineProperty: a key such as `__proto__` must stay a plain key.
        Object.defineProperty(result, name, {
          value: checked,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return issues.length === before ? result : INVALID;
    },
  };
}

export interface Field<T> {
  checker: Checker<T>;
  /** Must be present in the input. */
  required?: boolean;
  /** Filled in when absent (and published as the schema's `default`). */
  default?: T;
}

/** One field per property of `T` (optional properties included), each with its checker. */
export type Fields<T> = { [K in keyof T]-?: Field<Exclude<T[K], undefined>> };

export interface ObjectOptions<T> {
  /** Keys accepted in the input but dropped from the result (e.g. `$schema`). */
  ignoredKeys?: Readonly<Record<string, JsonSchema>>;
  /** Extra keywords for the object's schema (`allOf`, `not`, `minProperties`, ...). */
  extra?: JsonSchema;
  /** Cross-field rules, run when every field is valid. */
  rule?: (value: T, path: string, issues: ValidationIssue[]) => void;
  /** Fewest properties (`minProperties`). */
  minProperties?: number;
  minPropertiesMessage?: string;
}

/** A closed object (`additionalProperties: false`) with typed fields. */
export function object<T>(fields: Fields<T>, options: ObjectOptions<T> = {}): Checker<T> {
  const names = Object.keys(fields) as (keyof T & string)[];
  const properties: Record<string, unknown> = { ...options.ignoredKeys };
  const required: string[] = [];
  for (const name of names) {
    const field = fields[name];
    properties[name] =
      field.default === undefined
        ? field.checker.schema
        : { ...field.checker.schema, default: field.default };
    if (field.required) required.push(name);
  }
  const schema: Record<string, unknown> = {
    type: "object",
    additionalProperties: false,
    properties,
  };
  if (required.length) schema.required = required;
  if (options.minProperties !== undefined) schema.minProperties = options.minProperties;
  Object.assign(schema, options.extra);
  return {
    schema,
    check(input, path, issues) {
      if (!isPlainObject(input)) {
        issues.push({
          path: where(path),
          message: `must be an object, not ${describeType(input)}`,
        });
        return INVALID;
      }
      const before = issues.length;
      for (const key of Object.keys(input)) {
        if (!(key in fields) && !(options.ignoredKeys && key in options.ignoredKeys)) {
          issues.push({ path: childPath(path, key), message: "is not an allowed property" });
        }
      }
      if (
        options.minProperties !== undefined &&
        names.filter((name) => input[name] !== undefined).length < options.minProperties
      ) {
        issues.push({
          path: where(path),
          message:
            options.minPropertiesMessage ??
            `must have at least ${options.minProperties} properties`,
        });
      }
      const result: Record<string, unknown> = {};
      for (const name of names) {
        const field = fields[name];
        const at = childPath(path, name);
        if (!Object.hasOwn(input, name)) {
          if (field.required) issues.push({ path: at, message: "is required" });
          else if (field.default !== undefined) result[name] = structuredClone(field.default);
          continue;
        }
        const checked = field.checker.check(input[name], at, issues);
        if (checked !== INVALID) result[name] = checked;
      }
      if (issues.length !== before) return INVALID;
      options.rule?.(result as T, path, issues);
      return issues.length === before ? (result as T) : INVALID;
    },
  };
}

/**
 * A named definition: the schema refers to `#/$defs/<name>`, and `definitions`
 * collects the bodies for the root schema's `$defs`.
 */
export class SchemaDefinitions {
  readonly definitions: Record<string, JsonSchema> = {};

  define<T>(name: string, checker: Checker<T>): Checker<T> {
    this.definitions[name] = checker.schema;
    return { schema: { $ref: `#/$defs/${name}` }, check: checker.check };
  }
}
