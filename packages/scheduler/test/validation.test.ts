import { OrchestratorError, ValidationError } from "@orchestrator/core";
import { describe, expect, it } from "vitest";
import { createScheduler, type PlacementRequest, place, requestIssues } from "../src/index.js";
import { node } from "./helpers.js";

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    expect(OrchestratorError.hasCode(error, "VALIDATION_FAILED")).toBe(true);
    return (error as ValidationError).issues.map((issue) => `${issue.path}: ${issue.message}`);
  }
  throw new Error("expected a ValidationError");
}

describe("request validation", () => {
  it("accepts a minimal request", () => {
    expect(requestIssues({ resources: { memoryMb: 0 } })).toEqual([]);
  });

  it("lists every problem with its path", () => {
    const bad = {
      resources: { memoryMb: -1, cpu: Number.NaN },
      ports: [
        { name: "game" },
        { name: "game" },
        { name: "", port: 70000 },
        { name: "a", port: 1, protocol: "sctp" },
        { name: "b", port: 1 },
      ],
      constraints: [
        { label: "region", op: "like", value: "eu" },
        { label: "", op: "in", values: [] },
        { label: "x", op: "regex", pattern: "(" },
        { label: "v", op: "semver", comparator: "~", value: "one" },
      ],
      affinities: [{ label: "zone", op: "exists", weight: 101 }],
      antiAffinity: { maxPerNode: 0, weight: -5 },
      spread: [{ label: "", weight: 0, maxPerValue: 1.5 }],
    } as unknown as PlacementRequest;
    expect(issuesOf(() => place(bad, [node("a")]))).toEqual([
      "request.resources.memoryMb: must be a number ≥ 0",
      "request.resources.cpu: must be a number ≥ 0",
      "request.ports[1].name: 'game' is named twice",
      "request.ports[2].name: must be a non-empty string",
      "request.ports[2].port: must be an integer in 1..65535",
      "request.ports[3].protocol: must be tcp or udp",
      "request.ports[4].port: 1 is requested twice",
      "request.constraints[0].op: must be one of equals, not-equals, in, not-in, regex, exists, not-exists, semver",
      "request.constraints[1].label: must be a non-empty string",
      "request.constraints[1].values: must be a non-empty array of strings",
      expect.stringMatching(
        /^request\.constraints\[2\]\.pattern: is not a valid regular expression \(/,
      ),
      "request.constraints[3].comparator: must be one of = != > >= < <=",
      "request.constraints[3].value: must be a version such as 1.4.0",
      "request.affinities[0].weight: must be a number in -100..100",
      "request.antiAffinity.maxPerNode: must be an integer ≥ 1",
      "request.antiAffinity.weight: must be a number in 0..100",
      "request.templateName: is required with antiAffinity (instances of which template?)",
      "request.spread[0].label: must be a non-empty string",
      "request.spread[0].weight: must be a number in 1..100",
      "request.spread[0].maxPerValue: must be an integer ≥ 1",
      "request.templateName: is required with spread (instances of which template?)",
    ]);
  });

  it("validates every request of a batch before placing any", () => {
    const scheduler = createScheduler([node("a")]);
    const issues = issuesOf(() =>
      scheduler.placeBatch([{ resources: { memoryMb: 1 } }, { resources: {} } as PlacementRequest]),
    );
    expect(issues).toEqual(["requests[1].resources.memoryMb: must be a number ≥ 0"]);
    expect(issuesOf(() => scheduler.placeBatch("nope" as never))).toEqual([
      "requests: must be an array",
    ]);
  });
});

describe("snapshot validation", () => {
  it("refuses duplicate ids and impossible nodes, with paths", () => {
    const broken = [
      node("a"),
      node("a"),
      {
        ...node("b"),
        capacity: { memoryMb: -1, cpu: 1, diskMb: 0 },
        overcommit: 0,
        portRange: { from: 10, to: 5 },
      },
      {
        ...node("c"),
        status: "SLEEPING",
        labels: { region: 5 },
        usedPorts: [1.5],
        templateCounts: { mc: -1 },
      },
    ];
    expect(issuesOf(() => createScheduler(broken as never))).toEqual([
      "nodes[1].id: 'a' appears twice",
      "nodes[2].capacity.memoryMb: must be a number ≥ 0",
      "nodes[2].overcommit: must be a number > 0",
      "nodes[2].portRange: must satisfy 1 ≤ from ≤ to ≤ 65535",
      "nodes[3].status: must be one of ONLINE, DRAINING, OFFLINE",
      "nodes[3].usedPorts: must be an array of integers",
      "nodes[3].labels.region: must be a string",
      "nodes[3].templateCounts.mc: must be an integer ≥ 0",
    ]);
    expect(issuesOf(() => createScheduler({} as never))).toEqual(["nodes: must be an array"]);
  });
});

describe("option validation", () => {
  it("refuses unknown strategies, bad weights and malformed plugins", () => {
    expect(
      issuesOf(() =>
        createScheduler([], {
          strategy: "random" as never,
          seed: Number.NaN,
          maxEvaluated: 0,
          weights: { affinity: -1 },
          resourceWeights: { memory: 0, cpu: 0 },
          filters: [{ name: "x" } as never],
          scorers: [{ name: "y", score: () => 0, weight: -1 }],
        }),
      ),
    ).toEqual([
      "options.strategy: must be binpack or spread",
      "options.seed: must be a finite number or a string",
      "options.maxEvaluated: must be an integer ≥ 1 or Infinity",
      "options.weights.affinity: must be a number ≥ 0",
      "options.resourceWeights: at least one must be > 0",
      "options.filters[0]: must have a name and a check()",
      "options.scorers[0].weight: must be a number ≥ 0",
    ]);
  });

  it("is an OrchestratorError with a stable code, usable across package copies", () => {
    try {
      createScheduler([], { strategy: "x" as never });
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as OrchestratorError).toJSON().code).toBe("VALIDATION_FAILED");
    }
  });
});
