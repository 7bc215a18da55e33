/**
 * `@orchestrator/node-agent`: joins a Brain, syncs (outbound long-poll), and
 * prepares, starts, stops and destroys game servers through a runtime,
 * reporting every lifecycle change.
 */
export * from "./agent.js";
export * from "./config/agent-config.js";
export { type AgentLogger, InstanceManager } from "./instances/instance-manager.js";
export { LABELS, prepareInstance } from "./instances/prepare-instance.js";
export { BrainClient } from "./sync/brain-client.js";
