import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decideRestart } from "../src/lifecycle/index.js";

const onFailure = { policy: "on-failure", maxRestarts: 3, windowSeconds: 300 } as const;
const now = 1_000_000_000;

describe("decideRestart", () => {
  it("never restarts after a requested stop", () => {
    for (const policy of ["never", "on-failure", "always"] as const) {
      expect(
        decideRestart({ ...onFailure, policy }, { exitCode: 1, requested: true }, [], now),
      ).toEqual({ action: "stay", reason: "clean-exit" });
    }
  });

  it("follows the policy for crashes and clean exits", () => {
    const crash = { exitCode: 137, requested: false };
    const clean = { exitCode: 0, requested: false };
    expect(decideRestart({ ...onFailure, policy: "never" }, crash, [], now).action).toBe("stay");
    expect(decideRestart(onFailure, crash, [], now)).toEqual({ action: "restart", attempt: 1 });
    expect(decideRestart(onFailure, clean, [], now).action).toBe("stay");
    expect(decideRestart({ ...onFailure, policy: "always" }, clean, [], now).action).toBe(
      "restart",
    );
  });

  it("gives up after maxRestarts within the window, and forgets older ones", () => {
    const crash = { exitCode: 1, requested: false };
    const recent = [now - 10_000, now - 20_000, now - 30_000];
    expect(decideRestart(onFailure, crash, recent, now)).toEqual({
      action: "give-up",
      reason: "crash-loop",
      restarts: 3,
    });
    const old = [now - 301_000, now - 400_000, now - 500_000];
    expect(decideRestart(onFailure, crash, old, now)).toEqual({ action: "restart", attempt: 1 });
  });

  it("never allows more than maxRestarts restarts in any window (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5 }),
        fc.array(fc.integer({ min: 1, max: 120_000 }), { minLength: 1, maxLength: 40 }),
        (maxRestarts, gaps) => {
          const policy = { policy: "always", maxRestarts, windowSeconds: 60 } as const;
          const restarts: number[] = [];
          let t = 0;
          for (const gap of gaps) {
            t += gap;
            const decision = decideRestart(policy, { exitCode: 1, requested: false }, restarts, t);
            if (decision.action === "restart") restarts.push(t);
            const inWindow = restarts.filter((r) => r > t - 60_000).length;
            expect(inWindow).toBeLessThanOrEqual(maxRestarts);
          }
        },
      ),
    );
  });
});
