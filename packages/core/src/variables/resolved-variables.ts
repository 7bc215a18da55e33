/**
 * The final name → value table of one instance: the only namespace substitution
 * ever sees. It knows which values are secret and keeps them out of anything
 * meant for humans: `toJSON`, `util.inspect` and `redact` all mask them.
 */
import { inspect } from "node:util";
import { ValidationError, type ValidationIssue } from "../errors/orchestrator-error.js";
import { VARIABLE_NAME_PATTERN } from "./variable-name.js";

/** What secret values are replaced with in anything meant for humans. */
export const REDACTED = "********";

export class ResolvedVariables {
  readonly #values: ReadonlyMap<string, string>;
  readonly #secrets: ReadonlySet<string>;

  /**
   * Checks names (never values: those were validated against their definitions
   * by `resolveVariables`) and refuses NUL in values, which no argv, env or
   * config file can carry safely.
   */
  constructor(
    values: Iterable<readonly [string, string]> | Readonly<Record<string, string>>,
    secrets: Iterable<string> = [],
  ) {
    const entries: Iterable<readonly [string, string]> =
      Symbol.iterator in values
        ? (values as Iterable<readonly [string, string]>)
        : Object.entries(values as Record<string, string>);
    const map = new Map<string, string>();
    const issues: ValidationIssue[] = [];
    for (const [name, value] of entries) {
      if (!VARIABLE_NAME_PATTERN.test(name)) {
        issues.push({ path: `variables.${name}`, message: "is not a valid variable name" });
      } else if (typeof value !== "string") {
        issues.push({ path: `variables.${name}`, message: "must be a string" });
      } else if (value.includes("\u0000")) {
        issues.push({ path: `variables.${name}`, message: "must not contain NUL characters" });
      } else {
        map.set(name, value);
      }
    }
    if (issues.length > 0) throw new ValidationError(issues);
    this.#values = map;
    this.#secrets = new Set([...secrets].filter((name) => map.has(name)));
  }

  get size(): number {
    return this.#values.size;
  }

  has(name: string): boolean {
    return this.#values.has(name);
  }

  /** The value of `name`, in clear (callers must not log it when `isSecret(name)`). */
  get(name: string): string | undefined {
    return this.#values.get(name);
  }

  isSecret(name: string): boolean {
    return this.#secrets.has(name);
  }

  names(): string[] {
    return [...this.#values.keys()];
  }

  /** Name/value pairs in clear, for substitution. */
  entries(): IterableIterator<[string, string]> {
    return this.#values.entries();
  }

  /** A copy with more (or replaced) values, e.g. built-ins added after validation. */
  with(
    values: Iterable<readonly [string, string]> | Readonly<Record<string, string>>,
    secrets: Iterable<string> = [],
  ): ResolvedVariables {
    const extra = new ResolvedVariables(values, secrets);
    return new ResolvedVariables(
      [...this.#values, ...extra.entries()],
      [...this.#secrets, ...extra.names().filter((name) => extra.isSecret(name))],
    );
  }

  /** Replaces every occurrence of a non-empty secret value in `text` with `********`. */
  redact(text: string): string {
    let result = text;
    for (const name of this.#secrets) {
      const value = this.#values.get(name);
      if (value) result = result.split(value).join(REDACTED);
    }
    return result;
  }

  /** Values with secrets masked: safe to log or return from an API. */
  toJSON(): Record<string, string> {
    const json: Record<string, string> = {};
    for (const [name, value] of this.#values)
      json[name] = this.#secrets.has(name) ? REDACTED : value;
    return json;
  }

  [inspect.custom](): string {
    return `ResolvedVariables ${inspect(this.toJSON())}`;
  }
}
