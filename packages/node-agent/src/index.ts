/** @orchestrator/node-agent: not built yet; see the package README. */
export {};
