import { describe, expect, it } from "vitest";
import { compareVersions, parseVersion, satisfiesComparator } from "../src/index.js";

const v = (text: string) => {
  const parsed = parseVersion(text);
  if (parsed === null) throw new Error(`not a version: ${text}`);
  return parsed;
};

describe("semver", () => {
  it("parses full, short and v-prefixed versions; ignores build metadata", () => {
    expect(v("1.4.2")).toEqual({ major: 1, minor: 4, patch: 2, prerelease: [] });
    expect(v("v17")).toEqual({ major: 17, minor: 0, patch: 0, prerelease: [] });
    expect(v("21.0")).toEqual({ major: 21, minor: 0, patch: 0, prerelease: [] });
    expect(v("2.0.0-rc.1+build.5")).toEqual({
      major: 2,
      minor: 0,
      patch: 0,
      prerelease: ["rc", 1],
    });
  });

  it("rejects what is not a version", () => {
    for (const text of ["", "x", "1.2.3.4", "01.2.3", "1.2.3-01", "1..2", "latest", "1.2.3-"])
      expect(parseVersion(text), text).toBeNull();
  });

  it("orders numerically, not as text", () => {
    expect(compareVersions(v("1.10.0"), v("1.9.0"))).toBe(1);
    expect(compareVersions(v("1.9.9"), v("2.0.0"))).toBe(-1);
    expect(compareVersions(v("17"), v("17.0.0"))).toBe(0);
  });

  it("orders pre-releases as semver 2.0 does", () => {
    const ascending = [
      "1.0.0-alpha",
      "1.0.0-alpha.1",
      "1.0.0-alpha.beta",
      "1.0.0-beta",
      "1.0.0-beta.2",
      "1.0.0-beta.11",
      "1.0.0-rc.1",
      "1.0.0",
    ];
    for (let i = 0; i < ascending.length - 1; i += 1) {
      expect(compareVersions(v(ascending[i]!), v(ascending[i + 1]!)), ascending[i]).toBe(-1);
      expect(compareVersions(v(ascending[i + 1]!), v(ascending[i]!))).toBe(1);
    }
    expect(compareVersions(v("1.0.0+a"), v("1.0.0+b"))).toBe(0);
  });

  it("evaluates every comparator", () => {
    const cases: [string, Parameters<typeof satisfiesComparator>[1], string, boolean][] = [
      ["1.4.0", ">=", "1.4.0", true],
      ["1.4.0", ">", "1.4.0", false],
      ["1.3.9", "<", "1.4.0", true],
      ["1.4.0", "<=", "1.4.0-rc.1", false],
      ["1.4.0", "=", "1.4", true],
      ["1.4.1", "!=", "1.4.0", true],
    ];
    for (const [version, comparator, target, expected] of cases)
      expect(
        satisfiesComparator(v(version), comparator, v(target)),
        `${version} ${comparator} ${target}`,
      ).toBe(expected);
  });
});
