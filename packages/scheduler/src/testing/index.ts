/** `@orchestrator/scheduler/testing`: a one-line cluster builder for tests and benchmarks. */
export * from "./cluster.js";
