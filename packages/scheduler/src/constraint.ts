/**
 * Label tests shared by constraints (hard) and affinities (soft): matching a
 * single label value, a stable cache key, and the words an explanation uses.
 */
import type { Constraint } from "./placement-request.js";
import { parseVersion, satisfiesComparator } from "./semver.js";

/** Does a node whose label holds `value` (undefined: no such label) satisfy `constraint`? */
export function constraintMatcher(constraint: Constraint): (value: string | undefined) => boolean {
  switch (constraint.op) {
    case "equals":
      return (value) => value === constraint.value;
    case "not-equals":
      // A node without the label is not equal to anything, so it passes.
      return (value) => value !== constraint.value;
    case "in": {
      const set = new Set(constraint.values);
      return (value) => value !== undefined && set.has(value);
    }
    case "not-in": {
      const set = new Set(constraint.values);
      return (value) => value === undefined || !set.has(value);
    }
    case "regex": {
      const pattern = new RegExp(constraint.pattern);
      return (value) => value !== undefined && pattern.test(value);
    }
    case "exists":
      return (value) => value !== undefined;
    case "not-exists":
      return (value) => value === undefined;
    case "semver": {
      const target = parseVersion(constraint.value);
      const { comparator } = constraint;
      return (value) => {
        if (value === undefined || target === null) return false;
        const version = parseVersion(value);
        return version !== null && satisfiesComparator(version, comparator, target);
      };
    }
  }
}

/** A key equal for equal tests, used to cache what a test compiles to. */
export function constraintKey(constraint: Constraint): string {
  switch (constraint.op) {
    case "equals":
    case "not-equals":
      return `${constraint.op}\u0000${constraint.label}\u0000${constraint.value}`;
    case "in":
    case "not-in":
      return `${constraint.op}\u0000${constraint.label}\u0000${constraint.values.join("\u0001")}`;
    case "regex":
      return `regex\u0000${constraint.label}\u0000${constraint.pattern}`;
    case "exists":
    case "not-exists":
      return `${constraint.op}\u0000${constraint.label}`;
    case "semver":
      return `semver\u0000${constraint.label}\u0000${constraint.comparator}\u0000${constraint.value}`;
  }
}

function labelName(label: string): string {
  switch (label) {
    case "$id":
      return "node id";
    case "$name":
      return "node name";
    case "$agentVersion":
      return "agent version";
    default:
      return `label ${label}`;
  }
}

/** Why a node fails `constraint`, in words: "label region=eu required". */
export function describeConstraint(constraint: Constraint): string {
  const subject = labelName(constraint.label);
  switch (constraint.op) {
    case "equals":
      return constraint.label.startsWith("$")
        ? `${subject} must be ${constraint.value}`
        : `${subject}=${constraint.value} required`;
    case "not-equals":
      return constraint.label.startsWith("$")
        ? `${subject} must not be ${constraint.value}`
        : `${subject}=${constraint.value} excluded`;
    case "in":
      return `${subject} must be one of ${constraint.values.join(", ")}`;
    case "not-in":
      return `${subject} must not be one of ${constraint.values.join(", ")}`;
    case "regex":
      return `${subject} must match /${constraint.pattern}/`;
    case "exists":
      return `${subject} required`;
    case "not-exists":
      return `${subject} must not be set`;
    case "semver":
      return `${subject} must be a version ${constraint.comparator} ${constraint.value}`;
  }
}

/** The value of `label` on a node, including the `$` attributes. */
export function labelValue(
  node: {
    readonly id: string;
    readonly name?: string;
    readonly agentVersion?: string;
    readonly labels?: Readonly<Record<string, string>>;
  },
  label: string,
): string | undefined {
  if (label.startsWith("$")) {
    if (label === "$id") return node.id;
    if (label === "$name") return node.name;
    if (label === "$agentVersion") return node.agentVersion;
  }
  const labels = node.labels;
  if (labels === undefined || !Object.hasOwn(labels, label)) return undefined;
  return labels[label];
}
