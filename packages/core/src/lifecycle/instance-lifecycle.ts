/**
 * The instance lifecycle (DESIGN §4) as data: a table of (state, trigger) →
 * allowed next states. The table is exported for display (the panel draws it);
 * `InstanceLifecycle.apply` enforces it and yields the event to append.
 */
import type { Actor } from "../domain/instance-event.js";
import { OrchestratorError, type OrchestratorErrorOptions } from "../errors/orchestrator-error.js";

export const INSTANCE_STATES = [
  "REQUESTED",
  "SCHEDULED",
  "PREPARING",
  "PREPARED",
  "STARTING",
  "RUNNING",
  "STOPPING",
  "STOPPED",
  "DESTROYING",
  "DESTROYED",
  "FAILED",
  "LOST",
] as const;

export type InstanceState = (typeof INSTANCE_STATES)[number];

/** What causes a transition. */
export const INSTANCE_TRIGGERS = [
  /** The scheduler placed it on a node. */
  "schedule",
  /** The node began fetching and merging its template. */
  "prepare",
  /** The instance directory is ready. */
  "prepared",
  /** The server process/container was launched. */
  "start",
  /** The readiness check passed. */
  "ready",
  /** A graceful stop began. */
  "stop",
  /** The server exited after a stop, or cleanly on its own (exit code 0). */
  "stopped",
  /** Prepare failed, the server crashed, or start timed out. */
  "fail",
  /** Its node went OFFLINE. */
  "lose",
  /** Its node reported it again; the target is the state the node reports. */
  "found",
  /** Re-placement after a lost grace period (opt-in per template): back to REQUESTED, placed anew. */
  "reschedule",
  /** Destruction began (or, before placement, happened at once). */
  "destroy",
  /** The node removed everything it had. */
  "destroyed",
] as const;

export type InstanceTrigger = (typeof INSTANCE_TRIGGERS)[number];

type Targets = readonly InstanceState[];

/**
 * The transition table. A trigger absent from a state's row is illegal there.
 * Most triggers have one target; `found` lists the states a node may report.
 * Kept `as const` so `InstanceLifecycle.apply("RUNNING", "prepared", ...)` is a
 * compile error, not only a run-time one.
 */
export const INSTANCE_TRANSITIONS = {
  REQUESTED: { schedule: ["SCHEDULED"], fail: ["FAILED"], destroy: ["DESTROYED"] },
  SCHEDULED: {
    prepare: ["PREPARING"],
    fail: ["FAILED"],
    lose: ["LOST"],
    destroy: ["DESTROYING"],
  },
  PREPARING: {
    prepared: ["PREPARED"],
    fail: ["FAILED"],
    lose: ["LOST"],
    destroy: ["DESTROYING"],
  },
  PREPARED: {
    prepare: ["PREPARING"],
    start: ["STARTING"],
    fail: ["FAILED"],
    lose: ["LOST"],
    destroy: ["DESTROYING"],
  },
  STARTING: {
    ready: ["RUNNING"],
    stop: ["STOPPING"],
    stopped: ["STOPPED"],
    fail: ["FAILED"],
    lose: ["LOST"],
    destroy: ["DESTROYING"],
  },
  RUNNING: {
    stop: ["STOPPING"],
    stopped: ["STOPPED"],
    fail: ["FAILED"],
    lose: ["LOST"],
    destroy: ["DESTROYING"],
  },
  STOPPING: {
    stopped: ["STOPPED"],
    fail: ["FAILED"],
    lose: ["LOST"],
    destroy: ["DESTROYING"],
  },
  STOPPED: {
    prepare: ["PREPARING"],
    start: ["STARTING"],
    lose: ["LOST"],
    destroy: ["DESTROYING"],
  },
  FAILED: {
    prepare: ["PREPARING"],
    start: ["STARTING"],
    lose: ["LOST"],
    destroy: ["DESTROYING"],
  },
  LOST: {
    found: [
      "PREPARING",
      "PREPARED",
      "STARTING",
      "RUNNING",
      "STOPPING",
      "STOPPED",
      "FAILED",
      "DESTROYING",
    ],
    reschedule: ["REQUESTED"],
    destroy: ["DESTROYING"],
  },
  DESTROYING: { destroyed: ["DESTROYED"], fail: ["FAILED"], lose: ["LOST"] },
  DESTROYED: {},
} as const satisfies Record<InstanceState, Partial<Record<InstanceTrigger, Targets>>>;

type Table = typeof INSTANCE_TRANSITIONS;

/** The triggers legal in state `S` (all triggers of all states when `S` is the whole union). */
export type InstanceTriggerFrom<S extends InstanceState> = S extends InstanceState
  ? keyof Table[S] & InstanceTrigger
  : never;

const TABLE: Readonly<Record<InstanceState, Readonly<Partial<Record<InstanceTrigger, Targets>>>>> =
  INSTANCE_TRANSITIONS;

/** States with no way out. */
export const TERMINAL_INSTANCE_STATES: readonly InstanceState[] = INSTANCE_STATES.filter(
  (state) => Object.keys(TABLE[state]).length === 0,
);

export class IllegalTransitionError extends OrchestratorError {
  readonly from: InstanceState | string;
  readonly trigger: string;

  constructor(
    from: InstanceState | string,
    trigger: string,
    message: string,
    options: OrchestratorErrorOptions = {},
  ) {
    super("ILLEGAL_TRANSITION", message, {
      ...options,
      details: { from, trigger, ...options.details },
    });
    this.name = "IllegalTransitionError";
    this.from = from;
    this.trigger = trigger;
  }
}

/** The context of a transition, recorded in its event. */
export interface TransitionContext {
  at: Date;
  actor: Actor;
  /** Human-readable reason ("placed on node-3", "exited with code 1"). */
  reason: string;
  /** Required when the trigger has several targets (`found`). */
  to?: InstanceState;
}

/** An accepted transition; the event log assigns `seq` when it appends it. */
export interface TransitionResult {
  state: InstanceState;
  event: {
    from: InstanceState;
    to: InstanceState;
    at: Date;
    reason: string;
    actor: Actor;
  };
}

/** A report from a node about one instance, ordered by its per-instance `seq`. */
export interface InstanceReport {
  instanceId: string;
  /** Per-instance sequence number, strictly increasing on the node. */
  seq: number;
  trigger: InstanceTrigger;
  /** Target for multi-target triggers (`found`). */
  to?: InstanceState;
  reason: string;
  at: Date;
}

export type ReportOutcome =
  | { applied: true; result: TransitionResult; reportSeq: number }
  | { applied: false; reason: "stale" | "duplicate"; reportSeq: number };

function isInstanceState(value: string): value is InstanceState {
  return (INSTANCE_STATES as readonly string[]).includes(value);
}

function isInstanceTrigger(value: string): value is InstanceTrigger {
  return (INSTANCE_TRIGGERS as readonly string[]).includes(value);
}

export const InstanceLifecycle = {
  states: INSTANCE_STATES,
  triggers: INSTANCE_TRIGGERS,
  transitions: INSTANCE_TRANSITIONS,

  /** The states `trigger` may lead to from `from` (empty when illegal). */
  targets(from: InstanceState, trigger: InstanceTrigger): Targets {
    return TABLE[from]?.[trigger] ?? [];
  },

  /** Is `from --trigger--> to` allowed? (`to` defaults to the only target.) */
  can(from: InstanceState, trigger: InstanceTrigger, to?: InstanceState): boolean {
    const targets = InstanceLifecycle.targets(from, trigger);
    if (to === undefined) return targets.length === 1;
    return targets.includes(to);
  },

  /**
   * Applies a trigger. Throws `IllegalTransitionError` (code ILLEGAL_TRANSITION)
   * when the table does not allow it; inputs from outside (strings) are checked too.
   */
  apply<S extends InstanceState>(
    from: S,
    trigger: InstanceTriggerFrom<S>,
    context: TransitionContext,
  ): TransitionResult {
    if (!isInstanceState(from)) {
      throw new IllegalTransitionError(from, trigger, `unknown instance state '${from}'`);
    }
    if (!isInstanceTrigger(trigger)) {
      throw new IllegalTransitionError(from, trigger, `unknown instance trigger '${trigger}'`);
    }
    const targets = InstanceLifecycle.targets(from, trigger);
    if (targets.length === 0) {
      throw new IllegalTransitionError(
        from,
        trigger,
        `cannot ${trigger} an instance in state ${from}`,
      );
    }
    let to: InstanceState;
    if (context.to !== undefined) {
      if (!targets.includes(context.to)) {
        throw new IllegalTransitionError(
          from,
          trigger,
          `cannot ${trigger} an instance from ${from} to ${context.to}`,
          { details: { to: context.to, allowed: targets } },
        );
      }
      to = context.to;
    } else if (targets.length === 1) {
      to = targets[0]!;
    } else {
      throw new IllegalTransitionError(
        from,
        trigger,
        `'${trigger}' from ${from} needs a target state (one of ${targets.join(", ")})`,
        { details: { allowed: targets } },
      );
    }
    return {
      state: to,
      event: { from, to, at: context.at, reason: context.reason, actor: context.actor },
    };
  },

  /**
   * Applies a node's report unless it is late or a duplicate: a report whose
   * `seq` is not greater than `lastReportSeq` is ignored (never applied out of
   * order). An illegal transition still throws.
   */
  applyReport(
    current: { state: InstanceState; reportSeq: number },
    report: InstanceReport,
    actor: Actor,
  ): ReportOutcome {
    if (report.seq === current.reportSeq) {
      return { applied: false, reason: "duplicate", reportSeq: current.reportSeq };
    }
    if (report.seq < current.reportSeq) {
      return { applied: false, reason: "stale", reportSeq: current.reportSeq };
    }
    const result = InstanceLifecycle.apply<InstanceState>(current.state, report.trigger, {
      at: report.at,
      actor,
      reason: report.reason,
      ...(report.to === undefined ? {} : { to: report.to }),
    });
    return { applied: true, result, reportSeq: report.seq };
  },
} as const;
