/** `@orchestrator/core/templates`: layer merging (filled by the template-engine work). */
export {};
