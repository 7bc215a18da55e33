/**
 * `@orchestrator/core/testing`: fakes and the conformance suites every adapter
 * runs (one suite per port). Depends on vitest only where a suite is exported.
 */
export * from "./fake-clock.js";
export * from "./repository-conformance.js";
export * from "./runtime-conformance.js";
export * from "./sequential-id-generator.js";
export * from "./template-storage-conformance.js";
export * from "./test-services.js";
