/**
 * The crash-loop guard: decides what follows an exit, from the template's
 * restart policy and the times of recent restarts. Pure: the caller keeps the
 * history and passes the clock's time.
 */
import type { RestartPolicy } from "../domain/template.js";

export type RestartDecision =
  | { action: "restart"; attempt: number }
  | { action: "stay"; reason: "policy-never" | "clean-exit" }
  | { action: "give-up"; reason: "crash-loop"; restarts: number };

export interface ExitInfo {
  /** Exit code, or null when killed by a signal. */
  exitCode: number | null;
  /** True when the exit was requested (a stop), which never triggers a restart. */
  requested: boolean;
}

export function decideRestart(
  policy: RestartPolicy,
  exit: ExitInfo,
  /** Times (ms since epoch) of earlier automatic restarts. */
  recentRestarts: readonly number[],
  nowMs: number,
): RestartDecision {
  if (exit.requested) return { action: "stay", reason: "clean-exit" };
  const failed = exit.exitCode !== 0;
  if (policy.policy === "never") return { action: "stay", reason: "policy-never" };
  if (policy.policy === "on-failure" && !failed) return { action: "stay", reason: "clean-exit" };
  const windowStart = nowMs - policy.windowSeconds * 1000;
  const inWindow = recentRestarts.filter((at) => at > windowStart).length;
  if (inWindow >= policy.maxRestarts) {
    return { action: "give-up", reason: "crash-loop", restarts: inWindow };
  }
  return { action: "restart", attempt: inWindow + 1 };
}
