/** `@orchestrator/core/variables`: variable validation and substitution (filled by the template-engine work). */
export {};
