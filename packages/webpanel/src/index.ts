/** @orchestrator/webpanel: not built yet; see the package README. */
export {};
