/** @orchestrator/repository-sql: not built yet; see the package README. */
export {};
