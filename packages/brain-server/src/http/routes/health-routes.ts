/** /healthz (the process answers), /readyz (the database answers), /metrics (Prometheus). */
import type { Repositories } from "@orchestrator/core";
import type { FastifyPluginAsync } from "fastify";
import type { MetricsRegistry } from "../../metrics/metrics-registry.js";
import { requireUser } from "../authentication.js";

export interface HealthRoutesOptions {
  repositories: Repositories;
  metrics: MetricsRegistry;
  degraded: () => boolean;
}

export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (
  app,
  { repositories, metrics, degraded },
) => {
  app.get("/healthz", { schema: { tags: ["health"] } }, async () => ({ ok: true }));
  app.get("/readyz", { schema: { tags: ["health"] } }, async (_request, reply) => {
    try {
      await repositories.users.count();
    } catch {
      reply.status(503).header("retry-after", "1");
      return { ok: false, database: "unavailable", degraded: degraded() };
    }
    return { ok: true, database: "ok", degraded: degraded() };
  });
  app.get("/metrics", { schema: { tags: ["health"] } }, async (request, reply) => {
    requireUser(request, "viewer", "nodes", "read");
    reply.type("text/plain; version=0.0.4");
    return metrics.render();
  });
};
