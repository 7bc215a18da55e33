/** @orchestrator/scheduler: not built yet; see the package README. */
export {};
