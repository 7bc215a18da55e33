/**
 * Substitution in a runtime spec's argv and env. The command is an argv array
 * that was tokenized when the template was written: each element is
 * substituted on its own, so a value with spaces, quotes or `;` stays one
 * argument and can never add another. Nothing here ever reaches a shell.
 */
import { TemplateInvalidError } from "../errors/orchestrator-error.js";
import { reservedNameProblem } from "./variable-name.js";
import {
  type SubstitutionOptions,
  type SubstitutionReport,
  type SubstitutionVariables,
  unknownVariablesError,
  VariableSubstituter,
} from "./variable-substituter.js";

/** Environment keys: what POSIX shells and execve accept, upper or lower case. */
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

function substituterFor(
  variables: SubstitutionVariables | VariableSubstituter,
  options: SubstitutionOptions,
): VariableSubstituter {
  // Strictness is applied once over every element, so all unknowns are listed together.
  const source = variables instanceof VariableSubstituter ? variables.variables : variables;
  return new VariableSubstituter(source, { ...options, strict: false });
}

function isStrict(
  variables: SubstitutionVariables | VariableSubstituter,
  options: SubstitutionOptions,
): boolean {
  return options.strict ?? (variables instanceof VariableSubstituter ? variables.strict : true);
}

/**
 * Substitutes every argument of `argv` independently (`command[i]` in
 * reports). Strict by default: unknown variables throw `TEMPLATE_INVALID`.
 */
export function substituteArgv(
  argv: readonly string[],
  variables: SubstitutionVariables | VariableSubstituter,
  options: SubstitutionOptions & { onReport?: (reports: SubstitutionReport[]) => void } = {},
): string[] {
  if (!Array.isArray(argv) || argv.some((arg) => typeof arg !== "string")) {
    throw new TemplateInvalidError("a command must be an array of strings");
  }
  const substituter = substituterFor(variables, options);
  const reports: SubstitutionReport[] = [];
  const result = argv.map((arg, index) => {
    const { text, report } = substituter.substituteString(arg, `command[${index}]`);
    reports.push(report);
    return text;
  });
  options.onReport?.(reports);
  if (isStrict(variables, options) && reports.some((r) => r.unknownCount > 0)) {
    throw unknownVariablesError(reports);
  }
  return result;
}

/**
 * Substitutes the values of `env` (keys are literal). Keys must be
 * identifiers and must not be reserved names (`PATH`, `HOME`, `LD_*`,
 * `NODE_OPTIONS`, `DOCKER_*`, ...): the runtime owns those.
 */
export function substituteEnv(
  env: Readonly<Record<string, string>>,
  variables: SubstitutionVariables | VariableSubstituter,
  options: SubstitutionOptions & { onReport?: (reports: SubstitutionReport[]) => void } = {},
): Record<string, string> {
  if (typeof env !== "object" || env === null || Array.isArray(env)) {
    throw new TemplateInvalidError("env must be an object of strings");
  }
  const problems: string[] = [];
  for (const [key, value] of Object.entries(env)) {
    if (!ENV_KEY.test(key)) problems.push(`env key ${JSON.stringify(key)} is not an identifier`);
    else {
      // Upper-cased: many programs also honour lower-case forms (`http_proxy`).
      const reserved = reservedNameProblem(key.toUpperCase());
      if (reserved) problems.push(`env.${key} ${reserved}`);
    }
    if (typeof value !== "string") problems.push(`env.${key} must be a string`);
  }
  if (problems.length > 0) {
    throw new TemplateInvalidError(`invalid env: ${problems.join("; ")}`, {
      details: { problems },
    });
  }
  const substituter = substituterFor(variables, options);
  const reports: SubstitutionReport[] = [];
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    const { text, report } = substituter.substituteString(value, `env.${key}`);
    reports.push(report);
    result[key] = text;
  }
  options.onReport?.(reports);
  if (isStrict(variables, options) && reports.some((r) => r.unknownCount > 0)) {
    throw unknownVariablesError(reports);
  }
  return result;
}
