/**
 * `@orchestrator/brain-server`: the Brain (control plane). `buildBrain(config,
 * overrides)` returns a fastify app and its background loops; it never listens
 * by itself.
 */

export type { InstanceStatsSample, RuntimeStatus } from "@orchestrator/core";
export * from "./brain.js";
export * from "./config/brain-config.js";
export { HTTP_STATUS } from "./http/error-handler.js";
export type * from "./http/schemas.js";
export type { InstanceView } from "./services/instance-service.js";
export type { StatsUnsupported } from "./services/instance-stats.js";
export type { LogLineEvent } from "./services/live-events.js";
export type { NodeService, NodeView } from "./services/node-service.js";
export type { Principal } from "./services/principal.js";
export type { TemplateDetails, TemplateService } from "./services/template-service.js";
export { signWebhook, WEBHOOK_EVENTS } from "./services/webhook-dispatcher.js";
