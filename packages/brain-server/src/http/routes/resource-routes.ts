/** /templates, /nodes, /instances and /audit. */
import { assertTemplateName, type Repositories } from "@orchestrator/core";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import type { EventFeed } from "../../events/event-feed.js";
import { SseStream } from "../../events/sse-stream.js";
import type { InstanceAction, InstanceService } from "../../services/instance-service.js";
import type { InstanceStats } from "../../services/instance-stats.js";
import type { LiveEvents, Revocation } from "../../services/live-events.js";
import type { NodeService } from "../../services/node-service.js";
import { actorOf, type ScopeArea } from "../../services/principal.js";
import type { TemplateService } from "../../services/template-service.js";
import { recheckCredential, requireUser } from "../authentication.js";
import {
  AuditQuery,
  CreateInstanceBody,
  EventsQuery,
  IdParams,
  InputBody,
  InstanceListQuery,
  JoinTokenBody,
  RegisterTemplateBody,
} from "../schemas.js";

export interface ResourceRoutesOptions {
  templates: TemplateService;
  nodes: NodeService;
  instances: InstanceService;
  repositories: Repositories;
  live: LiveEvents;
  /** The event log tailed for `GET /events` (every replica's events, in seq order). */
  feed: EventFeed;
  /** Live resource usage (`GET /instances/:id/stats`); the route is absent without it. */
  stats?: InstanceStats;
}

export const resourceRoutes: FastifyPluginAsync<ResourceRoutesOptions> = async (app, options) => {
  const { templates, nodes, instances, repositories, live, feed, stats } = options;

  /**
   * Ends a live stream when its caller's access ends: at once for revocations
   * announced in this process, within seconds for any other.
   */
  const closeWhenAccessEnds = (
    request: FastifyRequest,
    principal: ReturnType<typeof requireUser>,
    stream: SseStream,
    area: ScopeArea,
  ) => {
    const endOnRevoke = live.revocations.subscribe((revocation) => {
      if (revokes(revocation, principal)) stream.close();
    });
    const stopRecheck = recheckCredential(request, "viewer", area, () => stream.close());
    stream.onClose(() => {
      endOnRevoke();
      stopRecheck();
    });
  };

  // --- templates ---------------------------------------------------------------
  app.get("/templates", { schema: { tags: ["templates"] } }, async (request) => {
    requireUser(request, "viewer", "templates", "read");
    return { items: await templates.list() };
  });
  app.get("/templates/*", { schema: { tags: ["templates"] } }, async (request) => {
    requireUser(request, "viewer", "templates", "read");
    const name = (request.params as { "*": string })["*"];
    assertTemplateName(name, "name");
    return templates.get(name);
  });
  app.post(
    "/templates",
    { schema: { tags: ["templates"], body: RegisterTemplateBody } },
    async (request, reply) => {
      const principal = requireUser(request, "operator", "templates", "write");
      const result = await templates.register(
        request.body as never,
        actorOf(principal),
        request.ip,
      );
      reply.status(result.created ? 201 : 200);
      return result;
    },
  );
  app.delete("/templates/*", { schema: { tags: ["templates"] } }, async (request) => {
    const principal = requireUser(request, "operator", "templates", "write");
    const name = (request.params as { "*": string })["*"];
    assertTemplateName(name, "name");
    await templates.delete(name, actorOf(principal), request.ip);
    return { ok: true };
  });

  // --- nodes -------------------------------------------------------------------
  app.get("/nodes", { schema: { tags: ["nodes"] } }, async (request) => {
    requireUser(request, "viewer", "nodes", "read");
    return { items: (await nodes.list()).map((node) => nodes.view(node)) };
  });
  app.get("/nodes/:id", { schema: { tags: ["nodes"], params: IdParams } }, async (request) => {
    requireUser(request, "viewer", "nodes", "read");
    const { node, instances: onNode } = await nodes.get((request.params as { id: string }).id);
    return { ...nodes.view(node), instances: onNode.map((instance) => instances.view(instance)) };
  });
  app.post(
    "/nodes/join-tokens",
    { schema: { tags: ["nodes"], body: JoinTokenBody } },
    async (request, reply) => {
      const principal = requireUser(request, "admin", "nodes", "write");
      const { expiresInMinutes = 60 } = (request.body ?? {}) as { expiresInMinutes?: number };
      const { token, secret } = await nodes.createJoinToken(
        actorOf(principal),
        expiresInMinutes,
        request.ip,
      );
      reply.status(201);
      return { token, secret };
    },
  );
  app.get("/nodes/join-tokens", { schema: { tags: ["nodes"] } }, async (request) => {
    requireUser(request, "admin", "nodes", "read");
    return { items: await nodes.listJoinTokens() };
  });
  for (const action of ["drain", "undrain"] as const) {
    app.post(
      `/nodes/:id/${action}`,
      { schema: { tags: ["nodes"], params: IdParams } },
      async (request) => {
        const principal = requireUser(request, "operator", "nodes", "write");
        const node = await nodes.setDrain(
          (request.params as { id: string }).id,
          action === "drain",
          actorOf(principal),
          request.ip,
        );
        return nodes.view(node);
      },
    );
  }
  app.delete("/nodes/:id", { schema: { tags: ["nodes"], params: IdParams } }, async (request) => {
    const principal = requireUser(request, "operator", "nodes", "write");
    await nodes.delete((request.params as { id: string }).id, actorOf(principal), request.ip);
    return { ok: true };
  });

  // --- instances -----------------------------------------------------------------
  app.get(
    "/instances",
    { schema: { tags: ["instances"], querystring: InstanceListQuery } },
    async (request) => {
      requireUser(request, "viewer", "instances", "read");
      const query = request.query as InstanceListQuery;
      const page = await instances.list({
        ...(query.state ? { state: query.state as never } : {}),
        ...(query.node ? { nodeId: query.node } : {}),
        ...(query.template ? { templateName: query.template } : {}),
        limit: query.limit ?? 100,
        ...(query.after ? { after: query.after } : {}),
      });
      return { items: page.items.map((instance) => instances.view(instance)), next: page.next };
    },
  );
  app.get(
    "/instances/:id",
    { schema: { tags: ["instances"], params: IdParams } },
    async (request) => {
      requireUser(request, "viewer", "instances", "read");
      return instances.detail((request.params as { id: string }).id);
    },
  );
  app.post(
    "/instances",
    { schema: { tags: ["instances"], body: CreateInstanceBody } },
    async (request, reply) => {
      const principal = requireUser(request, "operator", "instances", "write");
      const created = await instances.create(
        request.body as CreateInstanceBody,
        actorOf(principal),
        request.ip,
      );
      reply.status(201);
      return instances.view(created);
    },
  );
  for (const action of [
    "start",
    "stop",
    "restart",
    "kill",
  ] as const satisfies readonly InstanceAction[]) {
    app.post(
      `/instances/:id/${action}`,
      { schema: { tags: ["instances"], params: IdParams } },
      async (request, reply) => {
        const principal = requireUser(request, "operator", "instances", "write");
        const updated = await instances.act(
          (request.params as { id: string }).id,
          action,
          actorOf(principal),
          request.ip,
        );
        reply.status(202);
        return instances.view(updated);
      },
    );
  }
  app.post(
    "/instances/:id/input",
    { schema: { tags: ["instances"], params: IdParams, body: InputBody } },
    async (request, reply) => {
      const principal = requireUser(request, "operator", "instances", "write");
      const { line } = request.body as { line: string };
      await instances.act(
        (request.params as { id: string }).id,
        "input",
        actorOf(principal),
        request.ip,
        line,
      );
      reply.status(202);
      return { ok: true };
    },
  );
  app.delete(
    "/instances/:id",
    { schema: { tags: ["instances"], params: IdParams } },
    async (request, reply) => {
      const principal = requireUser(request, "operator", "instances", "write");
      const updated = await instances.destroy(
        (request.params as { id: string }).id,
        actorOf(principal),
        request.ip,
      );
      reply.status(202);
      return instances.view(updated);
    },
  );
  app.get(
    "/instances/:id/events",
    { schema: { tags: ["instances"], params: IdParams, querystring: EventsQuery } },
    async (request) => {
      requireUser(request, "viewer", "instances", "read");
      const { after, limit } = request.query as { after?: number; limit?: number };
      return { items: await instances.events((request.params as { id: string }).id, after, limit) };
    },
  );
  app.get(
    "/instances/:id/logs",
    { schema: { tags: ["instances"], params: IdParams } },
    async (request, reply) => {
      const principal = requireUser(request, "viewer", "instances", "read");
      const instance = await instances.get((request.params as { id: string }).id);
      const stream = SseStream.start(request, reply);
      for (const line of live.backlog(instance.id)) stream.send("log", line);
      const unwatch = live.watch(instance.id);
      const unsubscribe = live.logs.subscribe((line) => {
        if (line.instanceId === instance.id) stream.send("log", line);
      });
      closeWhenAccessEnds(request, principal, stream, "instances");
      stream.onClose(() => {
        unwatch();
        unsubscribe();
      });
    },
  );

  if (stats) {
    // SSE: the latest sample (if any) then live ones, event `stats`, data an
    // `InstanceStatsSample`. An instance whose runtime reports no stats gets one
    // `unsupported` event ({ instanceId, reason }) and the stream stays open.
    app.get(
      "/instances/:id/stats",
      { schema: { tags: ["instances"], params: IdParams } },
      async (request, reply) => {
        const principal = requireUser(request, "viewer", "instances", "read");
        const instance = await instances.get((request.params as { id: string }).id);
        const stream = SseStream.start(request, reply);
        const unsupported = stats.unsupportedReason(instance.id);
        if (unsupported !== null)
          stream.send("unsupported", { instanceId: instance.id, reason: unsupported });
        const latest = stats.latestOf(instance.id);
        if (latest && unsupported === null) stream.send("stats", latest);
        const unsubscribe = stats.samples.subscribe((sample) => {
          if (sample.instanceId === instance.id) stream.send("stats", sample);
        });
        const endUnsupported = stats.unsupported.subscribe((event) => {
          if (event.instanceId === instance.id) stream.send("unsupported", event);
        });
        const unwatch = stats.watch(instance.id, instance.nodeId);
        closeWhenAccessEnds(request, principal, stream, "instances");
        stream.onClose(() => {
          unwatch();
          unsubscribe();
          endUnsupported();
        });
      },
    );
  }

  // --- events (SSE, resumable) ---------------------------------------------------
  app.get("/events", { schema: { tags: ["events"] } }, async (request, reply) => {
    const principal = requireUser(request, "viewer", "events", "read");
    const header = request.headers["last-event-id"];
    const query = request.query as { after?: string };
    const after = Number(typeof header === "string" ? header : (query.after ?? 0));
    let cursor = Number.isSafeInteger(after) && after >= 0 ? after : 0;
    const stream = SseStream.start(request, reply);
    // Events from the feed are buffered while the history is replayed, then
    // flushed in seq order without duplicates: nothing committed is missed.
    const buffered: { seq: number }[] = [];
    let replaying = true;
    const send = (event: { seq: number }) => {
      if (event.seq <= cursor) return;
      cursor = event.seq;
      stream.send("event", event, event.seq);
    };
    const unsubscribe = await feed.subscribe((event) =>
      replaying ? buffered.push(event) : send(event),
    );
    closeWhenAccessEnds(request, principal, stream, "events");
    stream.onClose(unsubscribe);
    try {
      for (;;) {
        const page = await repositories.events.listAfter(cursor, 500);
        for (const event of page) send(event);
        if (page.length < 500 || !stream.isOpen) break;
      }
    } finally {
      replaying = false;
      for (const event of buffered.sort((a, b) => a.seq - b.seq)) send(event);
    }
  });

  // --- audit -------------------------------------------------------------------
  app.get("/audit", { schema: { tags: ["audit"], querystring: AuditQuery } }, async (request) => {
    requireUser(request, "admin", "audit", "read");
    const query = request.query as {
      before?: string;
      limit?: number;
      target?: string;
      action?: string;
    };
    return repositories.audit.list({
      ...(query.before ? { before: query.before } : {}),
      limit: query.limit ?? 100,
      ...(query.target ? { target: query.target } : {}),
      ...(query.action ? { action: query.action } : {}),
    });
  });
};

function revokes(revocation: Revocation, principal: ReturnType<typeof requireUser>): boolean {
  if (revocation.all || revocation.userId === principal.user.id) return true;
  if (principal.via === "token" && revocation.tokenId === principal.tokenId) return true;
  return principal.via === "session" && revocation.sessionId === principal.sessionId;
}
