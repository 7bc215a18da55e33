/** @orchestrator/runtime-docker: not built yet; see the package README. */
export {};
