/**
 * What a placement asks for, and its validation at the boundary. Invalid input
 * is a programming error (a typed `ValidationError`); "no node fits" is a result.
 */
import type { PortProtocol, RuntimeKind, ValidationIssue } from "@orchestrator/core";
import { ValidationError } from "@orchestrator/core";
import { parseVersion, VERSION_COMPARATORS, type VersionComparator } from "./semver.js";

/** Resources an instance needs; CPU and disk default to 0. */
export interface ResourceRequest {
  /** Memory in MiB. */
  memoryMb: number;
  /** CPU in cores (0.25 = a quarter of one core). */
  cpu?: number;
  /** Disk in MiB. */
  diskMb?: number;
}

/** A named port: dynamic (from the node's range) unless `port` fixes it. */
export interface PortRequest {
  name: string;
  /** A fixed host port; dynamic when absent. */
  port?: number;
  /** Informational: a port number is taken for both protocols. */
  protocol?: PortProtocol;
}

/**
 * A test on one node label. `label` is a label key, or a node attribute:
 * `$id`, `$name`, `$agentVersion`.
 */
export type Constraint =
  | { label: string; op: "equals"; value: string }
  | { label: string; op: "not-equals"; value: string }
  | { label: string; op: "in"; values: readonly string[] }
  | { label: string; op: "not-in"; values: readonly string[] }
  /** The value contains a match of `pattern` (anchor with ^…$ for a whole match). */
  | { label: string; op: "regex"; pattern: string }
  | { label: string; op: "exists" }
  | { label: string; op: "not-exists" }
  /** The value, read as a version, compares to `value` (`java >= 17`). */
  | { label: string; op: "semver"; comparator: VersionComparator; value: string };

export type ConstraintOperator = Constraint["op"];

/** A soft preference: matching nodes gain (positive) or lose (negative) `weight`, -100..100. */
export type Affinity = Constraint & { weight: number };

/** Spread instances of the request's template across the values of a node label. */
export interface SpreadRule {
  /** A label key (`region`, `zone`, `rack`) or node attribute, as in constraints. */
  label: string;
  /** How much this rule counts in the `label-spread` score, 1..100 (default 50). */
  weight?: number;
  /** Hard cap: nodes whose label value already holds this many instances are filtered out. */
  maxPerValue?: number;
}

/** Keep instances of the request's template apart, node by node. */
export interface AntiAffinity {
  /** Hard cap: at most this many instances of the template on one node. */
  maxPerNode?: number;
  /** Soft: prefer nodes running fewer instances of the template, 0..100 (default 0 = off). */
  weight?: number;
}

export interface PlacementRequest {
  /** Your id for the request, echoed in the result. */
  id?: string;
  /** The template; anti-affinity and spread count instances of it. */
  templateName?: string;
  resources: ResourceRequest;
  ports?: readonly PortRequest[];
  /** Only nodes offering this runtime. */
  runtime?: RuntimeKind;
  /** Hard: every constraint must hold. */
  constraints?: readonly Constraint[];
  /** Soft: scored. */
  affinities?: readonly Affinity[];
  antiAffinity?: AntiAffinity;
  spread?: readonly SpreadRule[];
}

export const CONSTRAINT_OPERATORS: readonly ConstraintOperator[] = [
  "equals",
  "not-equals",
  "in",
  "not-in",
  "regex",
  "exists",
  "not-exists",
  "semver",
];

const isFiniteNonNegative = (value: unknown): value is number =>
  typeof value === "number" && Number.isFinite(value) && value >= 0;

const isPositiveInteger = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 1;

const isString = (value: unknown): value is string => typeof value === "string";

const isPort = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535;

// Requests repeat the same few patterns; compiling each one once keeps
// validation off the placement hot path. Bounded so hostile input cannot grow it.
const patternProblems = new Map<string, string | null>();

function regexProblem(pattern: string): string | null {
  let problem = patternProblems.get(pattern);
  if (problem === undefined) {
    try {
      new RegExp(pattern);
      problem = null;
    } catch (error) {
      problem = (error as Error).message;
    }
    if (patternProblems.size >= 1024) patternProblems.clear();
    patternProblems.set(pattern, problem);
  }
  return problem;
}

/** `request.ports[2].name`; built only when there is a problem to report. */
function itemPath(base: string, index: number, field: string): string {
  return `${base}[${index}]${field}`;
}

/** Does an earlier item of `list` have `value` under `key`? */
function seenBefore(list: readonly unknown[], index: number, key: string, value: unknown): boolean {
  for (let j = 0; j < index; j += 1)
    if ((list[j] as Record<string, unknown> | null)?.[key] === value) return true;
  return false;
}

/** Checks `list[index]`; its path (`${base}[${index}]`) is only built for a problem. */
function checkConstraint(
  value: unknown,
  base: string,
  index: number,
  issues: ValidationIssue[],
): void {
  if (typeof value !== "object" || value === null) {
    issues.push({ path: itemPath(base, index, ""), message: "must be an object" });
    return;
  }
  const c = value as Record<string, unknown>;
  if (typeof c.label !== "string" || c.label.length === 0)
    issues.push({ path: itemPath(base, index, ".label"), message: "must be a non-empty string" });
  switch (c.op) {
    case "equals":
    case "not-equals":
      if (typeof c.value !== "string")
        issues.push({ path: itemPath(base, index, ".value"), message: "must be a string" });
      break;
    case "in":
    case "not-in":
      if (!Array.isArray(c.values) || c.values.length === 0 || !c.values.every(isString))
        issues.push({
          path: itemPath(base, index, ".values"),
          message: "must be a non-empty array of strings",
        });
      break;
    case "regex":
      if (typeof c.pattern !== "string") {
        issues.push({ path: itemPath(base, index, ".pattern"), message: "must be a string" });
        break;
      }
      {
        const problem = regexProblem(c.pattern);
        if (problem !== null)
          issues.push({
            path: itemPath(base, index, ".pattern"),
            message: `is not a valid regular expression (${problem})`,
          });
      }
      break;
    case "exists":
    case "not-exists":
      break;
    case "semver":
      if (!VERSION_COMPARATORS.includes(c.comparator as VersionComparator))
        issues.push({
          path: itemPath(base, index, ".comparator"),
          message: `must be one of ${VERSION_COMPARATORS.join(" ")}`,
        });
      if (typeof c.value !== "string" || parseVersion(c.value) === null)
        issues.push({
          path: itemPath(base, index, ".value"),
          message: "must be a version such as 1.4.0",
        });
      break;
    default:
      issues.push({
        path: itemPath(base, index, ".op"),
        message: `must be one of ${CONSTRAINT_OPERATORS.join(", ")}`,
      });
  }
}

/** Every problem with `request`, with paths under `prefix`. */
export function requestIssues(request: unknown, prefix = "request"): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  if (typeof request !== "object" || request === null) {
    return [{ path: prefix, message: "must be an object" }];
  }
  const r = request as Record<string, unknown>;
  if (r.id !== undefined && typeof r.id !== "string")
    issues.push({ path: `${prefix}.id`, message: "must be a string" });
  if (r.templateName !== undefined && (typeof r.templateName !== "string" || !r.templateName))
    issues.push({ path: `${prefix}.templateName`, message: "must be a non-empty string" });
  const resources = r.resources as Record<string, unknown> | undefined;
  if (typeof resources !== "object" || resources === null) {
    issues.push({ path: `${prefix}.resources`, message: "must be an object" });
  } else {
    if (!isFiniteNonNegative(resources.memoryMb))
      issues.push({ path: `${prefix}.resources.memoryMb`, message: "must be a number ≥ 0" });
    for (const key of ["cpu", "diskMb"] as const)
      if (resources[key] !== undefined && !isFiniteNonNegative(resources[key]))
        issues.push({ path: `${prefix}.resources.${key}`, message: "must be a number ≥ 0" });
  }
  if (r.ports !== undefined) {
    if (!Array.isArray(r.ports))
      issues.push({ path: `${prefix}.ports`, message: "must be an array" });
    else {
      // Ports are few: a quadratic duplicate check allocates nothing, and a
      // path string is only built for a problem.
      const ports = r.ports as unknown[];
      for (let i = 0; i < ports.length; i += 1) {
        const p = ports[i] as Record<string, unknown> | null;
        if (typeof p !== "object" || p === null) {
          issues.push({ path: itemPath(`${prefix}.ports`, i, ""), message: "must be an object" });
          continue;
        }
        if (typeof p.name !== "string" || p.name.length === 0)
          issues.push({
            path: itemPath(`${prefix}.ports`, i, ".name"),
            message: "must be a non-empty string",
          });
        else if (seenBefore(ports, i, "name", p.name))
          issues.push({
            path: itemPath(`${prefix}.ports`, i, ".name"),
            message: `'${p.name}' is named twice`,
          });
        if (p.port !== undefined) {
          if (!isPort(p.port))
            issues.push({
              path: itemPath(`${prefix}.ports`, i, ".port"),
              message: "must be an integer in 1..65535",
            });
          else if (seenBefore(ports, i, "port", p.port))
            issues.push({
              path: itemPath(`${prefix}.ports`, i, ".port"),
              message: `${p.port} is requested twice`,
            });
        }
        if (p.protocol !== undefined && p.protocol !== "tcp" && p.protocol !== "udp")
          issues.push({
            path: itemPath(`${prefix}.ports`, i, ".protocol"),
            message: "must be tcp or udp",
          });
      }
    }
  }
  if (r.runtime !== undefined && (typeof r.runtime !== "string" || !r.runtime))
    issues.push({ path: `${prefix}.runtime`, message: "must be a non-empty string" });
  if (r.constraints !== undefined) {
    if (!Array.isArray(r.constraints))
      issues.push({ path: `${prefix}.constraints`, message: "must be an array" });
    else
      for (let i = 0; i < r.constraints.length; i += 1)
        checkConstraint(r.constraints[i], `${prefix}.constraints`, i, issues);
  }
  if (r.affinities !== undefined) {
    if (!Array.isArray(r.affinities))
      issues.push({ path: `${prefix}.affinities`, message: "must be an array" });
    else
      for (let i = 0; i < r.affinities.length; i += 1) {
        const a: unknown = r.affinities[i];
        checkConstraint(a, `${prefix}.affinities`, i, issues);
        const weight = (a as { weight?: unknown } | null)?.weight;
        if (typeof weight !== "number" || !Number.isFinite(weight) || weight < -100 || weight > 100)
          issues.push({
            path: itemPath(`${prefix}.affinities`, i, ".weight"),
            message: "must be a number in -100..100",
          });
      }
  }
  const groupedBy = typeof r.templateName === "string" && r.templateName.length > 0;
  if (r.antiAffinity !== undefined) {
    const a = r.antiAffinity as Record<string, unknown> | null;
    if (typeof a !== "object" || a === null)
      issues.push({ path: `${prefix}.antiAffinity`, message: "must be an object" });
    else {
      if (a.maxPerNode !== undefined && !isPositiveInteger(a.maxPerNode))
        issues.push({
          path: `${prefix}.antiAffinity.maxPerNode`,
          message: "must be an integer ≥ 1",
        });
      if (
        a.weight !== undefined &&
        (typeof a.weight !== "number" || !(a.weight >= 0 && a.weight <= 100))
      )
        issues.push({
          path: `${prefix}.antiAffinity.weight`,
          message: "must be a number in 0..100",
        });
      if (!groupedBy)
        issues.push({
          path: `${prefix}.templateName`,
          message: "is required with antiAffinity (instances of which template?)",
        });
    }
  }
  if (r.spread !== undefined) {
    if (!Array.isArray(r.spread))
      issues.push({ path: `${prefix}.spread`, message: "must be an array" });
    else {
      const base = `${prefix}.spread`;
      for (let i = 0; i < r.spread.length; i += 1) {
        const rule = r.spread[i] as Record<string, unknown> | null;
        if (typeof rule !== "object" || rule === null) {
          issues.push({ path: itemPath(base, i, ""), message: "must be an object" });
          continue;
        }
        if (typeof rule.label !== "string" || rule.label.length === 0)
          issues.push({ path: itemPath(base, i, ".label"), message: "must be a non-empty string" });
        if (
          rule.weight !== undefined &&
          (typeof rule.weight !== "number" || !(rule.weight >= 1 && rule.weight <= 100))
        )
          issues.push({
            path: itemPath(base, i, ".weight"),
            message: "must be a number in 1..100",
          });
        if (rule.maxPerValue !== undefined && !isPositiveInteger(rule.maxPerValue))
          issues.push({
            path: itemPath(base, i, ".maxPerValue"),
            message: "must be an integer ≥ 1",
          });
      }
      if (r.spread.length > 0 && !groupedBy)
        issues.push({
          path: `${prefix}.templateName`,
          message: "is required with spread (instances of which template?)",
        });
    }
  }
  return issues;
}

/** Throws a `ValidationError` listing every problem with `request`. */
export function assertValidRequest(
  request: unknown,
  prefix = "request",
): asserts request is PlacementRequest {
  const issues = requestIssues(request, prefix);
  if (issues.length > 0) throw new ValidationError(issues);
}
