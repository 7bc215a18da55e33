/** @orchestrator/brain-server: not built yet; see the package README. */
export {};
