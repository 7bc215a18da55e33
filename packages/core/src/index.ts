/**
 * `@orchestrator/core`: domain types, ports (interfaces), typed errors and the
 * lifecycle state machines. Subpaths: `/lifecycle`, `/testing`.
 */
export * from "./domain/command.js";
export * from "./domain/instance.js";
export * from "./domain/instance-event.js";
export * from "./domain/node.js";
export * from "./domain/resources.js";
export * from "./domain/template.js";
export * from "./domain/user.js";
export * from "./errors/orchestrator-error.js";
export * from "./lifecycle/index.js";
export * from "./plugin-guard.js";
export * from "./ports/audit-repository.js";
export * from "./ports/clock.js";
export * from "./ports/command-outbox.js";
export * from "./ports/event-repository.js";
export * from "./ports/id-generator.js";
export * from "./ports/instance-repository.js";
export * from "./ports/join-token-repository.js";
export * from "./ports/lease-repository.js";
export * from "./ports/live-relay-repository.js";
export * from "./ports/node-repository.js";
export * from "./ports/plugin.js";
export * from "./ports/repositories.js";
export * from "./ports/runtime.js";
export * from "./ports/session-repository.js";
export * from "./ports/template-repository.js";
export * from "./ports/template-storage.js";
export * from "./ports/time-ordered-id-generator.js";
export * from "./ports/token-repository.js";
export * from "./ports/user-repository.js";
export * from "./protocol/agent-protocol.js";
export * from "./runtime/index.js";
export * from "./template-document/index.js";
