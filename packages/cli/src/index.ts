/** @orchestrator/cli: not built yet; see the package README. */
export {};
