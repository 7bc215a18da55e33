/**
 * `@orchestrator/scheduler`: pure, explainable placement of game-server
 * instances onto nodes. No I/O, no clock; randomness only from a seed.
 * Test helpers (a one-line cluster builder) live in `@orchestrator/scheduler/testing`.
 */
export * from "./apply-placement.js";
export { describeConstraint } from "./constraint.js";
export type { Explanation, FilterCount, ScoreBreakdown, ScoreComponent } from "./explanation.js";
export * from "./node-snapshot.js";
export * from "./placement-request.js";
export * from "./scheduler.js";
export type {
  PlacementStrategy,
  ResourceWeights,
  SchedulerOptions,
  ScoreWeights,
} from "./scheduler-options.js";
export * from "./scheduler-plugin.js";
export type { Version, VersionComparator } from "./semver.js";
export { compareVersions, parseVersion, satisfiesComparator } from "./semver.js";
