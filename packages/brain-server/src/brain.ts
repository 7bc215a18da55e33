/**
 * The Brain's composition root: `buildBrain(config, overrides)` wires every
 * service with tsyringe (explicit tokens, factories: no decorator metadata) and
 * returns a fastify app that never listens by itself. An integrator swaps any
 * port — repositories, clock, ids, scheduler options, template storage — with
 * `overrides`, or registers their own provider for any token in `register`.
 */
import "reflect-metadata";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import fastifyCookie from "@fastify/cookie";
import fastifyStatic from "@fastify/static";
import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import {
  type Clock,
  type IdGenerator,
  INSTANCE_STATES,
  type LeaseFence,
  NODE_STATUSES,
  NotFoundError,
  type Repositories,
  systemClock,
  type TemplateStorage,
  timeOrderedIdGenerator,
} from "@orchestrator/core";
import { openDatabase, SqlRepositories } from "@orchestrator/repository-sql";
import type { SchedulerOptions } from "@orchestrator/scheduler";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
} from "fastify";
import {
  type DependencyContainer,
  container as globalContainer,
  instanceCachingFactory,
} from "tsyringe";
import { LoginRateLimiter } from "./auth/login-rate-limiter.js";
import type { BrainConfig } from "./config/brain-config.js";
import { EventFeed } from "./events/event-feed.js";
import { registerAuthentication } from "./http/authentication.js";
import { registerErrorHandler } from "./http/error-handler.js";
import { agentRoutes } from "./http/routes/agent-routes.js";
import { authRoutes } from "./http/routes/auth-routes.js";
import { healthRoutes } from "./http/routes/health-routes.js";
import { resourceRoutes } from "./http/routes/resource-routes.js";
import { createValidatorCompiler } from "./http/validator-compiler.js";
import { LivenessMonitor } from "./liveness/liveness-monitor.js";
import { CommandExpiryRound } from "./loops/command-expiry-round.js";
import { LeasedLoop } from "./loops/leased-loop.js";
import { LivenessRound } from "./loops/liveness-round.js";
import { ReplacementRound } from "./loops/replacement-round.js";
import { SchedulingRound } from "./loops/scheduling-loop.js";
import { Counter, Gauge, Histogram, MetricsRegistry } from "./metrics/metrics-registry.js";
import { AgentService } from "./services/agent-service.js";
import { AgentSessions, agentSessionWindowMs } from "./services/agent-sessions.js";
import { AuthService } from "./services/auth-service.js";
import { InstanceService } from "./services/instance-service.js";
import { InstanceStats } from "./services/instance-stats.js";
import { LiveEvents } from "./services/live-events.js";
import { LiveRelay } from "./services/live-relay.js";
import { NodeRuntimeStatus, runtimeAvailabilityFilter } from "./services/node-runtime-status.js";
import { NodeService } from "./services/node-service.js";
import { NodeSignals } from "./services/node-signals.js";
import { PlacementExplanations } from "./services/placement-explanations.js";
import { TemplateService } from "./services/template-service.js";
import { WebhookDispatcher } from "./services/webhook-dispatcher.js";

/** Injection tokens of the Brain's container. */
export const TOKENS = {
  Config: Symbol.for("orchestrator.brain.Config"),
  Clock: Symbol.for("orchestrator.brain.Clock"),
  IdGenerator: Symbol.for("orchestrator.brain.IdGenerator"),
  Repositories: Symbol.for("orchestrator.brain.Repositories"),
  SchedulerOptions: Symbol.for("orchestrator.brain.SchedulerOptions"),
  TemplateStorage: Symbol.for("orchestrator.brain.TemplateStorage"),
  Logger: Symbol.for("orchestrator.brain.Logger"),
  LiveEvents: Symbol.for("orchestrator.brain.LiveEvents"),
  NodeSignals: Symbol.for("orchestrator.brain.NodeSignals"),
  PlacementExplanations: Symbol.for("orchestrator.brain.PlacementExplanations"),
  LivenessMonitor: Symbol.for("orchestrator.brain.LivenessMonitor"),
  LoginRateLimiter: Symbol.for("orchestrator.brain.LoginRateLimiter"),
  Metrics: Symbol.for("orchestrator.brain.Metrics"),
  AuthService: Symbol.for("orchestrator.brain.AuthService"),
  TemplateService: Symbol.for("orchestrator.brain.TemplateService"),
  InstanceService: Symbol.for("orchestrator.brain.InstanceService"),
  NodeService: Symbol.for("orchestrator.brain.NodeService"),
  AgentService: Symbol.for("orchestrator.brain.AgentService"),
  SchedulingRound: Symbol.for("orchestrator.brain.SchedulingRound"),
  LivenessRound: Symbol.for("orchestrator.brain.LivenessRound"),
  CommandExpiryRound: Symbol.for("orchestrator.brain.CommandExpiryRound"),
  ReplacementRound: Symbol.for("orchestrator.brain.ReplacementRound"),
  WebhookDispatcher: Symbol.for("orchestrator.brain.WebhookDispatcher"),
  InstanceStats: Symbol.for("orchestrator.brain.InstanceStats"),
  AgentSessions: Symbol.for("orchestrator.brain.AgentSessions"),
  NodeRuntimeStatus: Symbol.for("orchestrator.brain.NodeRuntimeStatus"),
} as const;

export interface BrainOverrides {
  /** Your persistence adapter; default: SQL repositories on `config.databaseUrl`. */
  repositories?: Repositories;
  clock?: Clock;
  ids?: IdGenerator;
  scheduler?: SchedulerOptions;
  /** Where `POST /templates {fromStorage}` reads `template.json`; none by default. */
  templateStorage?: TemplateStorage | null;
  /** fastify's logger option (default: info level). */
  logger?: FastifyServerOptions["logger"];
  /** This replica's name in leases (default: random). */
  holder?: string;
  /** Last word: register your own providers for any of `TOKENS`. */
  register?: (container: DependencyContainer) => void;
}

export interface Brain {
  readonly app: FastifyInstance;
  readonly container: DependencyContainer;
  /** Creates the first admin when none exists (the generated password is returned once). */
  ensureAdmin(): Promise<{ username: string; password: string | null } | null>;
  /**
   * Starts the background loops (scheduling, liveness, re-placement, command
   * expiry) and the live relay between replicas.
   */
  startLoops(): void;
  /** One round of every loop and of the live relay, in order (tests drive time with a fake clock). */
  runLoopsOnce(): Promise<void>;
  /** Listens on `config.host:config.port`; returns the address. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

const API_PREFIX = "/api/v1";

/**
 * Serves the built panel (a SPA) at `/`: files as they are, and `index.html`
 * for any other GET outside `/api`, so the panel's own routes load on refresh.
 */
async function servePanel(app: FastifyInstance, root: string): Promise<void> {
  if (!existsSync(join(root, "index.html"))) {
    app.log.warn({ panelDir: root }, "no index.html in the panel folder; the panel is not served");
    return;
  }
  // wildcard: false registers one route per file that exists now; the catch-all
  // below answers everything else with the SPA's index.html.
  await app.register(fastifyStatic, { root, prefix: "/", wildcard: false, index: ["index.html"] });
  app.get("/*", { schema: { hide: true } }, async (request, reply) => {
    const path = request.url.split("?")[0] ?? "/";
    if (path.startsWith("/api/")) throw new NotFoundError("route", `GET ${path}`);
    return reply.sendFile("index.html");
  });
}

export async function buildBrain(
  config: BrainConfig,
  overrides: BrainOverrides = {},
): Promise<Brain> {
  const app = Fastify({
    logger: overrides.logger ?? { level: "info" },
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    // A sync may be parked for `syncWaitMs`; keep sockets open a little longer.
    requestTimeout: config.syncWaitMs + 30_000,
    // On close, end keep-alive and streaming connections instead of waiting for them.
    forceCloseConnections: true,
  });
  app.setValidatorCompiler(createValidatorCompiler());

  const container = globalContainer.createChildContainer();
  const value = <T>(token: symbol, provided: T) =>
    container.register(token, { useValue: provided });
  const factory = <T>(token: symbol, make: (c: DependencyContainer) => T) =>
    container.register(token, { useFactory: instanceCachingFactory(make) });

  let ownedRepositories: Repositories | null = null;
  if (!overrides.repositories) {
    const { db } = openDatabase(config.databaseUrl);
    ownedRepositories = new SqlRepositories({ db, destroyDatabase: true });
  }
  value(TOKENS.Config, config);
  value(TOKENS.Clock, overrides.clock ?? systemClock);
  // Time-ordered ids: new rows land at the end of every index that holds an id.
  value(TOKENS.IdGenerator, overrides.ids ?? timeOrderedIdGenerator);
  value(TOKENS.Repositories, overrides.repositories ?? ownedRepositories);
  value(TOKENS.SchedulerOptions, overrides.scheduler ?? {});
  // A factory: tsyringe treats a `useValue` of null as "not registered".
  container.register(TOKENS.TemplateStorage, {
    useFactory: () => overrides.templateStorage ?? null,
  });
  value(TOKENS.Logger, app.log);
  factory(TOKENS.LiveEvents, () => new LiveEvents());
  factory(TOKENS.NodeSignals, () => new NodeSignals());
  factory(
    TOKENS.PlacementExplanations,
    (c) => new PlacementExplanations(c.resolve<Repositories>(TOKENS.Repositories)),
  );
  factory(TOKENS.Metrics, () => new MetricsRegistry());
  factory(
    TOKENS.InstanceStats,
    (c) =>
      new InstanceStats({
        // A first viewer wakes the node's parked sync: sampling starts now, not at its next poll.
        onFirstWatch: (_instanceId, nodeId) => {
          if (nodeId) c.resolve<NodeSignals>(TOKENS.NodeSignals).wake(nodeId);
        },
      }),
  );
  factory(
    TOKENS.AgentSessions,
    (c) => new AgentSessions(c.resolve<Clock>(TOKENS.Clock), agentSessionWindowMs(config)),
  );
  factory(TOKENS.NodeRuntimeStatus, () => new NodeRuntimeStatus());
  factory(
    TOKENS.LivenessMonitor,
    (c) =>
      new LivenessMonitor(c.resolve<Clock>(TOKENS.Clock), {
        offlineAfterMs: config.offlineAfterMs,
        massSilenceFraction: config.massSilenceFraction,
        massSilenceMinNodes: 3,
      }),
  );
  factory(
    TOKENS.LoginRateLimiter,
    (c) =>
      new LoginRateLimiter(
        c.resolve<Clock>(TOKENS.Clock),
        config.loginMaxAttempts,
        config.loginWindowMs,
      ),
  );
  const deps = (c: DependencyContainer) => ({
    repositories: c.resolve<Repositories>(TOKENS.Repositories),
    clock: c.resolve<Clock>(TOKENS.Clock),
    ids: c.resolve<IdGenerator>(TOKENS.IdGenerator),
    live: c.resolve<LiveEvents>(TOKENS.LiveEvents),
    signals: c.resolve<NodeSignals>(TOKENS.NodeSignals),
    log: c.resolve<FastifyBaseLogger>(TOKENS.Logger),
  });
  factory(TOKENS.AuthService, (c) => {
    const d = deps(c);
    return new AuthService(
      d.repositories,
      d.clock,
      d.ids,
      config,
      c.resolve(TOKENS.LoginRateLimiter),
      d.live,
    );
  });
  factory(TOKENS.TemplateService, (c) => {
    const d = deps(c);
    return new TemplateService(
      d.repositories,
      d.clock,
      c.resolve<TemplateStorage | null>(TOKENS.TemplateStorage),
    );
  });
  factory(TOKENS.InstanceService, (c) => {
    const d = deps(c);
    return new InstanceService(
      d.repositories,
      d.clock,
      d.ids,
      d.live,
      d.signals,
      c.resolve(TOKENS.PlacementExplanations),
      () => schedulingLoop?.wake(),
    );
  });
  factory(TOKENS.NodeService, (c) => {
    const d = deps(c);
    return new NodeService(
      d.repositories,
      d.clock,
      d.ids,
      config,
      c.resolve(TOKENS.LivenessMonitor),
      d.live,
      c.resolve<NodeRuntimeStatus>(TOKENS.NodeRuntimeStatus),
    );
  });
  factory(TOKENS.AgentService, (c) => {
    const d = deps(c);
    return new AgentService(
      d.repositories,
      d.clock,
      d.ids,
      config,
      c.resolve(TOKENS.LivenessMonitor),
      d.live,
      d.signals,
      d.log,
      {
        stats: c.resolve<InstanceStats>(TOKENS.InstanceStats),
        sessions: c.resolve<AgentSessions>(TOKENS.AgentSessions),
        runtimeStatus: c.resolve<NodeRuntimeStatus>(TOKENS.NodeRuntimeStatus),
        alert: (type, id, payload) =>
          c.resolve<WebhookDispatcher>(TOKENS.WebhookDispatcher).alert(type, id, payload),
        identityConflicts: c
          .resolve<MetricsRegistry>(TOKENS.Metrics)
          .register(
            new Counter(
              "orch_agent_identity_conflicts_total",
              "Agent syncs refused because another agent process holds the node's credential",
            ),
          ),
      },
    );
  });
  factory(TOKENS.SchedulingRound, (c) => {
    const d = deps(c);
    const metrics = c.resolve<MetricsRegistry>(TOKENS.Metrics);
    const latency = metrics.register(
      new Histogram(
        "orch_scheduling_round_seconds",
        "Duration of scheduling rounds that placed something",
      ),
    );
    const options = c.resolve<SchedulerOptions>(TOKENS.SchedulerOptions);
    return new SchedulingRound(
      d.repositories,
      d.clock,
      d.ids,
      {
        ...options,
        // Nodes whose runtime is down (as their agent reports) take nothing that needs it.
        filters: [
          ...(options.filters ?? []),
          runtimeAvailabilityFilter(c.resolve<NodeRuntimeStatus>(TOKENS.NodeRuntimeStatus)),
        ],
      },
      c.resolve(TOKENS.PlacementExplanations),
      d.live,
      d.signals,
      d.log,
      latency,
      // Runtime health as the node rows hold it (agents may sync with another replica).
      (nodes) => c.resolve<NodeRuntimeStatus>(TOKENS.NodeRuntimeStatus).load(nodes),
    );
  });
  factory(TOKENS.LivenessRound, (c) => {
    const d = deps(c);
    return new LivenessRound(
      d.repositories,
      d.clock,
      c.resolve(TOKENS.LivenessMonitor),
      d.live,
      Math.min(config.heartbeatIntervalMs, Math.floor(config.offlineAfterMs / 3)),
    );
  });
  factory(TOKENS.CommandExpiryRound, (c) => {
    const d = deps(c);
    return new CommandExpiryRound(d.repositories, d.clock, d.live, {
      maxAttempts: 10,
      maxAgeMs: 15 * 60_000,
    });
  });
  factory(TOKENS.ReplacementRound, (c) => {
    const d = deps(c);
    return new ReplacementRound(d.repositories, d.clock, d.live, () => schedulingLoop?.wake());
  });
  factory(
    TOKENS.WebhookDispatcher,
    (c) => new WebhookDispatcher(config.webhooks, c.resolve(TOKENS.Logger)),
  );
  overrides.register?.(container);

  const repositories = container.resolve<Repositories>(TOKENS.Repositories);
  const clock = container.resolve<Clock>(TOKENS.Clock);
  const live = container.resolve<LiveEvents>(TOKENS.LiveEvents);
  const feed = new EventFeed(
    repositories.events,
    live.events,
    container.resolve<FastifyBaseLogger>(TOKENS.Logger),
  );
  const signals = container.resolve<NodeSignals>(TOKENS.NodeSignals);
  const metrics = container.resolve<MetricsRegistry>(TOKENS.Metrics);
  const auth = container.resolve<AuthService>(TOKENS.AuthService);
  const scheduling = container.resolve<SchedulingRound>(TOKENS.SchedulingRound);
  const liveness = container.resolve<LivenessRound>(TOKENS.LivenessRound);
  const expiry = container.resolve<CommandExpiryRound>(TOKENS.CommandExpiryRound);
  const replacement = container.resolve<ReplacementRound>(TOKENS.ReplacementRound);
  const webhooks = container.resolve<WebhookDispatcher>(TOKENS.WebhookDispatcher);
  await repositories.init?.();
  await liveness.load();
  const unsubscribeWebhooks = live.events.subscribe((event) => webhooks.handle(event));
  const instanceStats = container.resolve<InstanceStats>(TOKENS.InstanceStats);
  const unsubscribeStats = live.events.subscribe((event) => instanceStats.onEvent(event));

  // --- metrics -------------------------------------------------------------------
  const requestSeconds = metrics.register(new Histogram("orch_api_request_seconds", "API latency"));
  const instancesByState: Gauge = metrics.register(
    new Gauge("orch_instances", "Instances by observed state", async () => {
      const counts = await repositories.instances.countByState();
      instancesByState.replace(INSTANCE_STATES.map((state) => [{ state }, counts[state] ?? 0]));
    }),
  );
  const nodesByStatus: Gauge = metrics.register(
    new Gauge("orch_nodes", "Nodes by status", async () => {
      const counts = await repositories.nodes.countByStatus();
      nodesByStatus.replace(NODE_STATUSES.map((status) => [{ status }, counts[status] ?? 0]));
    }),
  );
  const outbox: Gauge = metrics.register(
    new Gauge("orch_outbox_commands", "Commands in the outbox by status", async () => {
      const counts = await repositories.commands.countByStatus();
      outbox.replace(Object.entries(counts).map(([status, count]) => [{ status }, count ?? 0]));
    }),
  );
  const parked: Gauge = metrics.register(
    new Gauge("orch_parked_syncs", "Agent syncs waiting for work", () =>
      parked.set({}, signals.parked),
    ),
  );
  const runtimeStatus = container.resolve<NodeRuntimeStatus>(TOKENS.NodeRuntimeStatus);
  const runtimesDown: Gauge = metrics.register(
    new Gauge(
      "orch_nodes_runtime_unavailable",
      "Nodes whose agent reports at least one runtime unavailable (as this Brain heard)",
      () => runtimesDown.set({}, runtimeStatus.affectedNodes),
    ),
  );
  const degraded: Gauge = metrics.register(
    new Gauge(
      "orch_liveness_degraded",
      "1 when most nodes went silent at once and the Brain suspects itself",
      () => degraded.set({}, liveness.degraded ? 1 : 0),
    ),
  );
  const requests = metrics.register(
    new Counter("orch_api_requests_total", "API requests by route and status"),
  );
  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unknown";
    requestSeconds.observe({ route, method: request.method }, reply.elapsedTime / 1000);
    requests.inc({ route, method: request.method, status: String(reply.statusCode) });
  });

  // --- HTTP ----------------------------------------------------------------------
  registerErrorHandler(app);
  await app.register(fastifyCookie);
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: "Orchestrator Brain API", version: "1" },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer" },
          session: { type: "apiKey", in: "cookie", name: "orch_session" },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
  });
  await app.register(fastifySwaggerUi, { routePrefix: "/api/docs" });
  app.get("/api/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  registerAuthentication(app, auth);
  const auditAction = async (entry: {
    actor: { kind: "user" | "node" | "system"; id: string };
    action: string;
    target: string;
    ip: string;
  }) => {
    await repositories.audit.append({
      at: clock.now(),
      actor: entry.actor,
      action: entry.action,
      target: entry.target,
      details: {},
      source: entry.ip,
    });
  };
  await app.register(
    async (api) => {
      await api.register(healthRoutes, {
        repositories,
        metrics,
        degraded: () => liveness.degraded,
      });
      await api.register(authRoutes, { auth, config, audit: auditAction });
      await api.register(resourceRoutes, {
        templates: container.resolve<TemplateService>(TOKENS.TemplateService),
        nodes: container.resolve<NodeService>(TOKENS.NodeService),
        instances: container.resolve<InstanceService>(TOKENS.InstanceService),
        repositories,
        live,
        feed,
        stats: instanceStats,
      });
      await api.register(agentRoutes, {
        nodes: container.resolve<NodeService>(TOKENS.NodeService),
        agents: container.resolve<AgentService>(TOKENS.AgentService),
      });
    },
    { prefix: API_PREFIX },
  );
  app.get("/healthz", { schema: { hide: true } }, async () => ({ ok: true }));
  if (config.panelDir) await servePanel(app, config.panelDir);

  // --- background loops -------------------------------------------------------
  const holder = overrides.holder ?? `brain-${randomUUID()}`;
  const relay = new LiveRelay(
    repositories,
    clock,
    live,
    instanceStats,
    signals,
    container.resolve<FastifyBaseLogger>(TOKENS.Logger),
    { brainId: holder },
  );
  const log = container.resolve<FastifyBaseLogger>(TOKENS.Logger);
  const loop = (
    name: string,
    intervalMs: number,
    work: (fence: LeaseFence) => Promise<void>,
    idle?: () => Promise<void>,
  ) => new LeasedLoop(repositories.leases, clock, log, { name, holder, intervalMs }, work, idle);
  const schedulingLoop: LeasedLoop | null = loop("scheduler", 1_000, async (fence) => {
    await scheduling.run(fence);
  });
  const loops = [
    schedulingLoop,
    loop(
      "liveness",
      1_000,
      async (fence) => {
        await liveness.run(fence);
      },
      () => liveness.relay(),
    ),
    loop("replacement", 5_000, async (fence) => {
      await replacement.run(fence);
    }),
    loop("command-expiry", 10_000, async (fence) => {
      await expiry.run(fence);
    }),
  ];

  let closed = false;
  return {
    app,
    container,
    ensureAdmin: () => auth.ensureAdmin(),
    startLoops: () => {
      for (const each of loops) each.start();
      relay.start();
    },
    runLoopsOnce: async () => {
      for (const each of loops) await each.runOnce();
      await relay.round();
    },
    listen: () => app.listen({ host: config.host, port: config.port }),
    close: async () => {
      if (closed) return;
      closed = true;
      unsubscribeWebhooks();
      unsubscribeStats();
      webhooks.close();
      for (const each of loops) await each.stop();
      await relay.stop();
      signals.wakeAll();
      live.revoke({ all: true }); // ends every live stream
      feed.close();
      await app.close();
      if (ownedRepositories) await ownedRepositories.destroy?.();
    },
  };
}
