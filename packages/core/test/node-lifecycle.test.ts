import { describe, expect, it } from "vitest";
import {
  IllegalTransitionError,
  NODE_STATUSES,
  NODE_TRIGGERS,
  NodeLifecycle,
  type NodeStatus,
} from "../src/lifecycle/index.js";

// Expected next status for [drainRequested=false, drainRequested=true]; absent = illegal.
const EXPECTED: Record<string, [NodeStatus, NodeStatus]> = {
  "ONLINE drain": ["DRAINING", "DRAINING"],
  "ONLINE undrain": ["ONLINE", "ONLINE"],
  "ONLINE timeout": ["OFFLINE", "OFFLINE"],
  "ONLINE heartbeat": ["ONLINE", "ONLINE"],
  "DRAINING drain": ["DRAINING", "DRAINING"],
  "DRAINING undrain": ["ONLINE", "ONLINE"],
  "DRAINING timeout": ["OFFLINE", "OFFLINE"],
  "DRAINING heartbeat": ["DRAINING", "DRAINING"],
  "OFFLINE drain": ["OFFLINE", "OFFLINE"],
  "OFFLINE undrain": ["OFFLINE", "OFFLINE"],
  "OFFLINE heartbeat": ["ONLINE", "DRAINING"],
};

describe("NodeLifecycle", () => {
  const cases = NODE_STATUSES.flatMap((status) =>
    NODE_TRIGGERS.flatMap((trigger) =>
      [false, true].map((drain) => [status, trigger, drain] as const),
    ),
  );

  it.each(cases)("%s --%s--> (drainRequested=%s)", (status, trigger, drainRequested) => {
    const expected = EXPECTED[`${status} ${trigger}`];
    if (!expected) {
      expect(() => NodeLifecycle.next(status, trigger, drainRequested)).toThrow(
        IllegalTransitionError,
      );
      return;
    }
    expect(NodeLifecycle.next(status, trigger, drainRequested)).toBe(
      expected[drainRequested ? 1 : 0],
    );
  });

  it("places only on ONLINE nodes", () => {
    expect(NODE_STATUSES.filter((status) => NodeLifecycle.schedulable(status))).toEqual(["ONLINE"]);
  });
});
