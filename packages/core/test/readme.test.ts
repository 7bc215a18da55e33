import { describe, expect, it } from "vitest";
import { InstanceLifecycle } from "../src/lifecycle/index.js";

describe("README example", () => {
  it("runs as written", () => {
    const actor = { kind: "system", id: "docs" } as const;
    const at = new Date();
    let state = InstanceLifecycle.apply("REQUESTED", "schedule", {
      at,
      actor,
      reason: "placed",
    }).state;
    state = InstanceLifecycle.apply(state, "prepare", {
      at,
      actor,
      reason: "fetching layers",
    }).state;
    expect(state).toBe("PREPARING");
    expect(
      InstanceLifecycle.applyReport(
        { state: "RUNNING", reportSeq: 9 },
        { instanceId: "i", seq: 7, trigger: "ready", reason: "late", at },
        actor,
      ),
    ).toEqual({ applied: false, reason: "stale", reportSeq: 9 });
  });
});
