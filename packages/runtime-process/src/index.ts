/** @orchestrator/runtime-process: not built yet; see the package README. */
export {};
