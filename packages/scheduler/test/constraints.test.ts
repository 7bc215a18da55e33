import { describe, expect, it } from "vitest";
import { type Constraint, createScheduler, describeConstraint, place } from "../src/index.js";
import { node, placedOn, reasons } from "./helpers.js";

const nodes = [
  node("eu-old", {
    labels: { region: "eu", java: "11.0.2", tier: "game-small" },
    agentVersion: "1.2.0",
  }),
  node("eu-new", {
    labels: { region: "eu", java: "17", tier: "game-large", gpu: "a100" },
    agentVersion: "1.10.0",
  }),
  node("us", {
    name: "chicago-1",
    labels: { region: "us", java: "21.0.1" },
    agentVersion: "2.0.0-rc.1",
  }),
  node("bare", { labels: {} }),
];

/** Ids of the nodes a constraint admits (exhaustive, so every node is judged). */
function admitted(constraint: Constraint): string[] {
  const scheduler = createScheduler(nodes, { exhaustive: true });
  const ids: string[] = [];
  for (const candidate of nodes) {
    const result = scheduler.place({
      resources: { memoryMb: 0 },
      constraints: [constraint, { label: "$id", op: "equals", value: candidate.id }],
    });
    if (result.placed) ids.push(result.nodeId);
  }
  return ids;
}

describe("constraints", () => {
  it("equals / not-equals (a node without the label is not equal to anything)", () => {
    expect(admitted({ label: "region", op: "equals", value: "eu" })).toEqual(["eu-old", "eu-new"]);
    expect(admitted({ label: "region", op: "not-equals", value: "eu" })).toEqual(["us", "bare"]);
  });

  it("in / not-in", () => {
    expect(admitted({ label: "region", op: "in", values: ["us", "ap"] })).toEqual(["us"]);
    expect(admitted({ label: "region", op: "not-in", values: ["us", "ap"] })).toEqual([
      "eu-old",
      "eu-new",
      "bare",
    ]);
  });

  it("regex searches the value (anchors make it a whole match)", () => {
    expect(admitted({ label: "tier", op: "regex", pattern: "large" })).toEqual(["eu-new"]);
    expect(admitted({ label: "tier", op: "regex", pattern: "^game-" })).toEqual([
      "eu-old",
      "eu-new",
    ]);
    expect(admitted({ label: "tier", op: "regex", pattern: "^large$" })).toEqual([]);
  });

  it("exists / not-exists", () => {
    expect(admitted({ label: "gpu", op: "exists" })).toEqual(["eu-new"]);
    expect(admitted({ label: "gpu", op: "not-exists" })).toEqual(["eu-old", "us", "bare"]);
  });

  it("semver compares versions numerically and fails on missing or unparsable values", () => {
    expect(admitted({ label: "java", op: "semver", comparator: ">=", value: "17" })).toEqual([
      "eu-new",
      "us",
    ]);
    expect(admitted({ label: "java", op: "semver", comparator: "<", value: "17.0.0" })).toEqual([
      "eu-old",
    ]);
    const weird = [node("odd", { labels: { java: "latest" } })];
    const result = place(
      {
        resources: { memoryMb: 0 },
        constraints: [{ label: "java", op: "semver", comparator: ">=", value: "1" }],
      },
      weird,
    );
    expect(reasons(result)).toEqual(["1 constraint: label java must be a version >= 1"]);
  });

  it("reaches node attributes: $id, $name, $agentVersion", () => {
    expect(admitted({ label: "$name", op: "equals", value: "chicago-1" })).toEqual(["us"]);
    expect(
      admitted({ label: "$agentVersion", op: "semver", comparator: ">=", value: "1.10.0" }),
    ).toEqual(["eu-new", "us"]);
    expect(admitted({ label: "$id", op: "in", values: ["bare", "nope"] })).toEqual(["bare"]);
  });

  it("must all hold; the first failing one is the node's reason", () => {
    const result = place(
      {
        resources: { memoryMb: 0 },
        constraints: [
          { label: "region", op: "equals", value: "eu" },
          { label: "gpu", op: "exists" },
        ],
      },
      nodes,
      { exhaustive: true },
    );
    expect(placedOn(result)).toBe("eu-new");
    expect(reasons(result)).toEqual([
      "2 constraint: label region=eu required",
      "1 constraint: label gpu required",
    ]);
  });
});

describe("describeConstraint", () => {
  it("says in words why a node fails", () => {
    const cases: [Constraint, string][] = [
      [{ label: "region", op: "equals", value: "eu" }, "label region=eu required"],
      [{ label: "region", op: "not-equals", value: "us" }, "label region=us excluded"],
      [{ label: "region", op: "in", values: ["eu", "us"] }, "label region must be one of eu, us"],
      [{ label: "region", op: "not-in", values: ["ap"] }, "label region must not be one of ap"],
      [{ label: "host", op: "regex", pattern: "^game-" }, "label host must match /^game-/"],
      [{ label: "gpu", op: "exists" }, "label gpu required"],
      [{ label: "gpu", op: "not-exists" }, "label gpu must not be set"],
      [
        { label: "java", op: "semver", comparator: ">=", value: "17" },
        "label java must be a version >= 17",
      ],
      [{ label: "$id", op: "equals", value: "n1" }, "node id must be n1"],
      [{ label: "$name", op: "not-equals", value: "old" }, "node name must not be old"],
      [
        { label: "$agentVersion", op: "semver", comparator: ">=", value: "1.4.0" },
        "agent version must be a version >= 1.4.0",
      ],
    ];
    for (const [constraint, text] of cases) expect(describeConstraint(constraint)).toBe(text);
  });
});
