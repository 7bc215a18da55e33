/**
 * A small semantic-version comparison for label constraints (`java >= 17`,
 * agent version >= 1.4.0). Lenient where labels are in practice: a leading
 * `v`, and one to three numeric parts (`17` = `17.0.0`). Pre-releases order
 * as semver 2.0 says; build metadata is ignored.
 */

export type VersionComparator = "=" | "!=" | ">" | ">=" | "<" | "<=";

export const VERSION_COMPARATORS: readonly VersionComparator[] = ["=", "!=", ">", ">=", "<", "<="];

export interface Version {
  major: number;
  minor: number;
  patch: number;
  /** Dot-separated pre-release identifiers; empty for a release. */
  prerelease: readonly (string | number)[];
}

const PATTERN =
  /^v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

/** Parses a version, or returns null when `text` is not one. */
export function parseVersion(text: string): Version | null {
  const match = PATTERN.exec(text.trim());
  if (!match) return null;
  const prerelease: (string | number)[] = [];
  if (match[4] !== undefined) {
    for (const part of match[4].split(".")) {
      // Numeric identifiers with a leading zero are invalid in semver 2.0.
      if (/^\d+$/.test(part)) {
        if (part.length > 1 && part.startsWith("0")) return null;
        prerelease.push(Number(part));
      } else prerelease.push(part);
    }
  }
  const major = Number(match[1]);
  const minor = match[2] === undefined ? 0 : Number(match[2]);
  const patch = match[3] === undefined ? 0 : Number(match[3]);
  if (!Number.isSafeInteger(major) || !Number.isSafeInteger(minor) || !Number.isSafeInteger(patch))
    return null;
  return { major, minor, patch, prerelease };
}

function compareIdentifiers(a: string | number, b: string | number): number {
  if (typeof a === "number" && typeof b === "number") return a === b ? 0 : a < b ? -1 : 1;
  // Numeric identifiers always have lower precedence than alphanumeric ones.
  if (typeof a === "number") return -1;
  if (typeof b === "number") return 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

/** -1, 0 or 1 as `a` is lower than, equal to or higher than `b` in semver precedence. */
export function compareVersions(a: Version, b: Version): number {
  if (a.major !== b.major) return a.major < b.major ? -1 : 1;
  if (a.minor !== b.minor) return a.minor < b.minor ? -1 : 1;
  if (a.patch !== b.patch) return a.patch < b.patch ? -1 : 1;
  const pa = a.prerelease;
  const pb = b.prerelease;
  // A release is higher than any of its pre-releases.
  if (pa.length === 0 || pb.length === 0) return pa.length === pb.length ? 0 : pa.length ? -1 : 1;
  for (let i = 0; i < Math.max(pa.length, pb.length); i += 1) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const order = compareIdentifiers(x, y);
    if (order !== 0) return order;
  }
  return 0;
}

/** Does `version <comparator> target` hold? */
export function satisfiesComparator(
  version: Version,
  comparator: VersionComparator,
  target: Version,
): boolean {
  const order = compareVersions(version, target);
  switch (comparator) {
    case "=":
      return order === 0;
    case "!=":
      return order !== 0;
    case ">":
      return order > 0;
    case ">=":
      return order >= 0;
    case "<":
      return order < 0;
    case "<=":
      return order <= 0;
  }
}
