import { describe, expect, it } from "vitest";
import {
  IllegalTransitionError,
  INSTANCE_STATES,
  INSTANCE_TRANSITIONS,
  INSTANCE_TRIGGERS,
  InstanceLifecycle,
  type InstanceState,
  type InstanceTrigger,
  OrchestratorError,
  TERMINAL_INSTANCE_STATES,
} from "../src/index.js";

const at = new Date("2026-01-01T00:00:00Z");
const actor = { kind: "system", id: "test" } as const;

// The expected table, written out independently of the implementation: every
// (state, trigger) pair not listed here must be refused.
const EXPECTED: Record<string, InstanceState | InstanceState[]> = {
  "REQUESTED schedule": "SCHEDULED",
  "REQUESTED fail": "FAILED",
  "REQUESTED destroy": "DESTROYED",
  "SCHEDULED prepare": "PREPARING",
  "SCHEDULED fail": "FAILED",
  "SCHEDULED lose": "LOST",
  "SCHEDULED destroy": "DESTROYING",
  "PREPARING prepared": "PREPARED",
  "PREPARING fail": "FAILED",
  "PREPARING lose": "LOST",
  "PREPARING destroy": "DESTROYING",
  "PREPARED prepare": "PREPARING",
  "PREPARED start": "STARTING",
  "PREPARED fail": "FAILED",
  "PREPARED lose": "LOST",
  "PREPARED destroy": "DESTROYING",
  "STARTING ready": "RUNNING",
  "STARTING stop": "STOPPING",
  "STARTING stopped": "STOPPED",
  "STARTING fail": "FAILED",
  "STARTING lose": "LOST",
  "STARTING destroy": "DESTROYING",
  "RUNNING stop": "STOPPING",
  "RUNNING stopped": "STOPPED",
  "RUNNING fail": "FAILED",
  "RUNNING lose": "LOST",
  "RUNNING destroy": "DESTROYING",
  "STOPPING stopped": "STOPPED",
  "STOPPING fail": "FAILED",
  "STOPPING lose": "LOST",
  "STOPPING destroy": "DESTROYING",
  "STOPPED prepare": "PREPARING",
  "STOPPED start": "STARTING",
  "STOPPED lose": "LOST",
  "STOPPED destroy": "DESTROYING",
  "FAILED prepare": "PREPARING",
  "FAILED start": "STARTING",
  "FAILED lose": "LOST",
  "FAILED destroy": "DESTROYING",
  "LOST found": [
    "PREPARING",
    "PREPARED",
    "STARTING",
    "RUNNING",
    "STOPPING",
    "STOPPED",
    "FAILED",
    "DESTROYING",
  ],
  "LOST reschedule": "REQUESTED",
  "LOST destroy": "DESTROYING",
  "DESTROYING destroyed": "DESTROYED",
  "DESTROYING fail": "FAILED",
  "DESTROYING lose": "LOST",
};

describe("InstanceLifecycle", () => {
  const pairs = INSTANCE_STATES.flatMap((state) =>
    INSTANCE_TRIGGERS.map((trigger) => [state, trigger] as const),
  );

  it("covers every (state, trigger) pair in this test", () => {
    expect(pairs).toHaveLength(INSTANCE_STATES.length * INSTANCE_TRIGGERS.length);
  });

  it.each(pairs)("%s --%s-->", (state, trigger) => {
    const expected = EXPECTED[`${state} ${trigger}`];
    const apply = (to?: InstanceState) =>
      InstanceLifecycle.apply<InstanceState>(state, trigger, {
        at,
        actor,
        reason: "test",
        ...(to ? { to } : {}),
      });
    if (expected === undefined) {
      expect(() => apply()).toThrow(IllegalTransitionError);
      expect(InstanceLifecycle.targets(state, trigger)).toEqual([]);
      return;
    }
    const targets = Array.isArray(expected) ? expected : [expected];
    expect(InstanceLifecycle.targets(state, trigger)).toEqual(targets);
    for (const to of targets) {
      const result = apply(targets.length > 1 ? to : undefined);
      expect(result.state).toBe(to);
      expect(result.event).toEqual({ from: state, to, at, reason: "test", actor });
    }
    if (targets.length > 1) {
      // A multi-target trigger needs its target named, and only a listed one.
      expect(() => apply()).toThrow(/needs a target state/);
      const outsider = INSTANCE_STATES.find((candidate) => !targets.includes(candidate))!;
      expect(() => apply(outsider)).toThrow(IllegalTransitionError);
    }
  });

  it("has DESTROYED as its only terminal state", () => {
    expect(TERMINAL_INSTANCE_STATES).toEqual(["DESTROYED"]);
  });

  it("reports illegal transitions with a stable code and details", () => {
    try {
      InstanceLifecycle.apply("RUNNING" as InstanceState, "prepared", {
        at,
        actor,
        reason: "late",
      });
      expect.unreachable();
    } catch (error) {
      expect(OrchestratorError.hasCode(error, "ILLEGAL_TRANSITION")).toBe(true);
      expect((error as OrchestratorError).details).toMatchObject({
        from: "RUNNING",
        trigger: "prepared",
      });
    }
  });

  it("refuses unknown states and triggers coming from outside", () => {
    expect(() =>
      InstanceLifecycle.apply("ASLEEP" as InstanceState, "start", { at, actor, reason: "x" }),
    ).toThrow(/unknown instance state/);
    expect(() =>
      InstanceLifecycle.apply<InstanceState>("RUNNING", "explode" as InstanceTrigger, {
        at,
        actor,
        reason: "x",
      }),
    ).toThrow(/unknown instance trigger/);
  });

  it("makes an illegal literal transition a compile error", () => {
    const illegal = () => {
      // @ts-expect-error RUNNING has no 'prepared' trigger
      return InstanceLifecycle.apply("RUNNING", "prepared", { at, actor, reason: "" });
    };
    expect(illegal).toThrow(IllegalTransitionError);
    expect(InstanceLifecycle.apply("RUNNING", "stop", { at, actor, reason: "" }).state).toBe(
      "STOPPING",
    );
  });

  it("exports the table as data for display", () => {
    expect(Object.keys(INSTANCE_TRANSITIONS).sort()).toEqual([...INSTANCE_STATES].sort());
    expect(JSON.parse(JSON.stringify(INSTANCE_TRANSITIONS))).toEqual(INSTANCE_TRANSITIONS);
  });
});

describe("InstanceLifecycle.applyReport", () => {
  const node = { kind: "node", id: "node_1" } as const;
  const report = (seq: number, trigger: InstanceTrigger, to?: InstanceState) => ({
    instanceId: "inst_1",
    seq,
    trigger,
    reason: "report",
    at,
    ...(to ? { to } : {}),
  });

  it("applies a report with a higher sequence number", () => {
    const outcome = InstanceLifecycle.applyReport(
      { state: "STARTING", reportSeq: 4 },
      report(5, "ready"),
      node,
    );
    expect(outcome).toMatchObject({ applied: true, reportSeq: 5, result: { state: "RUNNING" } });
  });

  it("ignores a duplicate report", () => {
    expect(
      InstanceLifecycle.applyReport({ state: "RUNNING", reportSeq: 5 }, report(5, "ready"), node),
    ).toEqual({ applied: false, reason: "duplicate", reportSeq: 5 });
  });

  it("ignores a late report instead of applying it out of order", () => {
    expect(
      InstanceLifecycle.applyReport({ state: "STOPPED", reportSeq: 9 }, report(7, "ready"), node),
    ).toEqual({ applied: false, reason: "stale", reportSeq: 9 });
  });

  it("applies any permutation of a report stream as the in-order stream would end", () => {
    const stream = [
      report(1, "prepare"),
      report(2, "prepared"),
      report(3, "start"),
      report(4, "ready"),
    ];
    const permutations = [
      [0, 1, 2, 3],
      [3, 0, 1, 2],
      [0, 0, 1, 1, 2, 3, 3],
    ];
    for (const order of permutations) {
      let current: { state: InstanceState; reportSeq: number } = {
        state: "SCHEDULED",
        reportSeq: 0,
      };
      const applied: number[] = [];
      for (const index of order) {
        const item = stream[index]!;
        let outcome: ReturnType<typeof InstanceLifecycle.applyReport>;
        try {
          outcome = InstanceLifecycle.applyReport(current, item, node);
        } catch (error) {
          // A report that skips ahead is illegal from the current state: refused, not applied.
          expect(error).toBeInstanceOf(IllegalTransitionError);
          continue;
        }
        if (outcome.applied) {
          current = { state: outcome.result.state, reportSeq: outcome.reportSeq };
          applied.push(item.seq);
        }
      }
      // Applied sequence numbers are strictly increasing: never out of order, never twice.
      expect(applied).toEqual([...applied].sort((a, b) => a - b));
      expect(new Set(applied).size).toBe(applied.length);
    }
  });

  it("lets a LOST instance be found in the state its node reports", () => {
    const outcome = InstanceLifecycle.applyReport(
      { state: "LOST", reportSeq: 3 },
      report(4, "found", "RUNNING"),
      node,
    );
    expect(outcome).toMatchObject({ applied: true, result: { state: "RUNNING" } });
  });
});
