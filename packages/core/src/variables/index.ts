/**
 * `@orchestrator/core/variables`: variable validation and substitution.
 * `${NAME}`, `${NAME:-default}`, `$${` for a literal `${`; one pass (values are
 * never re-scanned), streaming in constant memory, strict mode with
 * `file:line:column` of every unknown variable, secrets never in messages.
 */
export * from "./binary-content.js";
export * from "./built-in-variables.js";
export * from "./resolve-variables.js";
export * from "./resolved-variables.js";
export * from "./runtime-substitution.js";
export * from "./substitution-scanner.js";
export * from "./validate-variable-definitions.js";
export * from "./value-escaping.js";
export * from "./variable-name.js";
export * from "./variable-substituter.js";
