/** The agent routes: join (with a one-time join token) and the sync long-poll (node credential). */
import type { JoinRequest, SyncRequest } from "@orchestrator/core";
import type { FastifyPluginAsync } from "fastify";
import type { AgentService } from "../../services/agent-service.js";
import type { NodeService } from "../../services/node-service.js";
import { requireNode } from "../authentication.js";
import { JoinBody, SyncBody } from "../schemas.js";

export interface AgentRoutesOptions {
  nodes: NodeService;
  agents: AgentService;
}

export const agentRoutes: FastifyPluginAsync<AgentRoutesOptions> = async (
  app,
  { nodes, agents },
) => {
  app.post(
    "/agent/join",
    { schema: { tags: ["agent"], body: JoinBody } },
    async (request, reply) => {
      const response = await nodes.join(request.body as JoinRequest, request.ip);
      reply.status(201);
      return response;
    },
  );

  app.post(
    "/agent/sync",
    { schema: { tags: ["agent"], body: SyncBody } },
    async (request, reply) => {
      const node = requireNode(request);
      // A parked sync ends when the agent hangs up (it has something new to say).
      // The response's "close" before it finished is the hang-up; the request's
      // own "close" only means its body was read.
      const abort = new AbortController();
      reply.raw.once("close", () => {
        if (!reply.raw.writableFinished) abort.abort();
      });
      return agents.sync(node, request.body as SyncRequest, abort.signal, { ip: request.ip });
    },
  );
};
