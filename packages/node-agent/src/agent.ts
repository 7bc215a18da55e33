/**
 * The Node Agent's composition root: `createAgent(config, overrides)` wires the
 * runtime, template storage, cache and state files with tsyringe (explicit
 * tokens, factories), joins the Brain once, and runs the sync loop. An
 * integrator swaps the runtime or the storage by configuration or by passing
 * their own implementation.
 */
import "reflect-metadata";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  type AgentCommand,
  type Clock,
  type CommandResultReport,
  guardPlugin,
  OrchestratorError,
  type Runtime,
  type RuntimeKind,
  type SyncRequest,
  type SyncResponse,
  systemClock,
  type TemplateStorage,
} from "@orchestrator/core";
import { TemplateCache } from "@orchestrator/core/cache";
import { DockerRuntime } from "@orchestrator/runtime-docker";
import { DEFAULT_SERVER_PATH, ProcessRuntime } from "@orchestrator/runtime-process";
import { FolderTemplateStorage } from "@orchestrator/storage-fs";
import { S3TemplateStorage } from "@orchestrator/storage-s3";
import {
  type DependencyContainer,
  container as globalContainer,
  instanceCachingFactory,
} from "tsyringe";
import type { AgentConfig, StorageConfig } from "./config/agent-config.js";
import { type AgentLogger, InstanceManager } from "./instances/instance-manager.js";
import { CommandLedger } from "./state/command-ledger.js";
import { readCredential, writeCredential } from "./state/credential-store.js";
import { InstanceRecords } from "./state/instance-records.js";
import { ReportJournal } from "./state/report-journal.js";
import { claimAgentSession, newSessionId } from "./sync/agent-session.js";
import { Backoff } from "./sync/backoff.js";
import { BrainClient } from "./sync/brain-client.js";
import { LogForwarder } from "./sync/log-forwarder.js";
import { RuntimeHealth } from "./sync/runtime-health.js";
import { StatsSampler } from "./sync/stats-sampler.js";

export const AGENT_VERSION = "0.1.0";

export const AGENT_TOKENS = {
  Config: Symbol.for("orchestrator.agent.Config"),
  Clock: Symbol.for("orchestrator.agent.Clock"),
  Runtime: Symbol.for("orchestrator.agent.Runtime"),
  TemplateStorage: Symbol.for("orchestrator.agent.TemplateStorage"),
  TemplateCache: Symbol.for("orchestrator.agent.TemplateCache"),
  BrainClient: Symbol.for("orchestrator.agent.BrainClient"),
  Logger: Symbol.for("orchestrator.agent.Logger"),
} as const;

export interface AgentOverrides {
  runtime?: Runtime;
  storage?: TemplateStorage;
  clock?: Clock;
  fetch?: typeof fetch;
  logger?: AgentLogger;
  /** Last word: register your own providers for any of `AGENT_TOKENS`. */
  register?: (container: DependencyContainer) => void;
  /** Time between stats samples of a watched instance (default 2 s). */
  statsIntervalMs?: number;
  /** Time between runtime health probes (default 5 s). */
  runtimeCheckIntervalMs?: number;
  /** A runtime that does not answer a probe within this is reported unavailable (default 5 s). */
  runtimeCheckTimeoutMs?: number;
}

export interface Agent {
  readonly container: DependencyContainer;
  /** The node id (after `start`). */
  readonly nodeId: string | null;
  /**
   * Random id of this agent process, sent on every sync: the Brain lets one
   * session hold a node, so a second process with the same credential is refused.
   * After `start`, a crashed predecessor's session on this boot is continued
   * (see `claimAgentSession`).
   */
  readonly sessionId: string;
  /** Joins (first start) or loads the credential, recovers instances, starts syncing. */
  start(): Promise<void>;
  /** One sync round trip (tests); does not wait for commands it starts. */
  syncOnce(options?: { wait?: boolean }): Promise<void>;
  /** Commands started by syncs and not finished yet. */
  idle(): Promise<void>;
  /** Stops syncing; running servers keep running (they are not the agent's children). */
  stop(): Promise<void>;
}

const consoleLogger: AgentLogger = {
  info: (details, message) => console.log(JSON.stringify({ level: "info", message, ...details })),
  warn: (details, message) => console.warn(JSON.stringify({ level: "warn", message, ...details })),
  error: (details, message) =>
    console.error(JSON.stringify({ level: "error", message, ...details })),
};

export function defaultRuntime(config: AgentConfig): Runtime {
  const instanceRoots = [join(config.dataDir, "instances")];
  if (config.runtime === "docker") {
    return new DockerRuntime({ allowedImages: config.allowedImages, instanceRoots });
  }
  return new ProcessRuntime({
    stateDirectory: join(config.dataDir, "runtime"),
    instanceRoots,
    // The agent's own Node first: templates that run `node` get a current one.
    path: `${dirname(process.execPath)}:${DEFAULT_SERVER_PATH}`,
  });
}

export function defaultStorage(config: StorageConfig): TemplateStorage {
  if (config.storage === "s3" && config.s3) {
    const { endpoint, region, bucket, prefix, forcePathStyle, accessKeyId, secretAccessKey } =
      config.s3;
    return new S3TemplateStorage({
      bucket,
      region,
      ...(prefix ? { prefix } : {}),
      ...(endpoint ? { endpoint } : {}),
      forcePathStyle,
      ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
    });
  }
  return new FolderTemplateStorage({ root: config.storageDir });
}

export function createAgent(config: AgentConfig, overrides: AgentOverrides = {}): Agent {
  const container = globalContainer.createChildContainer();
  const factory = <T>(token: symbol, make: (c: DependencyContainer) => T) =>
    container.register(token, { useFactory: instanceCachingFactory(make) });
  container.register(AGENT_TOKENS.Config, { useValue: config });
  container.register(AGENT_TOKENS.Clock, { useValue: overrides.clock ?? systemClock });
  container.register(AGENT_TOKENS.Logger, { useValue: overrides.logger ?? consoleLogger });
  factory(AGENT_TOKENS.Runtime, () =>
    guardPlugin(overrides.runtime ?? defaultRuntime(config), "runtime"),
  );
  factory(AGENT_TOKENS.TemplateStorage, () =>
    guardPlugin(overrides.storage ?? defaultStorage(config), "template storage"),
  );
  factory(
    AGENT_TOKENS.BrainClient,
    () =>
      new BrainClient({
        brainUrl: config.brainUrl,
        ...(overrides.fetch ? { fetch: overrides.fetch } : {}),
      }),
  );
  factory(
    AGENT_TOKENS.TemplateCache,
    (c) =>
      new TemplateCache({
        storage: c.resolve<TemplateStorage>(AGENT_TOKENS.TemplateStorage),
        dir: join(config.dataDir, "cache"),
        maxBytes: config.cacheMaxBytes,
        clock: c.resolve<Clock>(AGENT_TOKENS.Clock),
        onWarning: (warning) =>
          c
            .resolve<AgentLogger>(AGENT_TOKENS.Logger)
            .warn({ code: warning.code, layer: warning.layer }, warning.message),
      }),
  );
  overrides.register?.(container);

  const log = container.resolve<AgentLogger>(AGENT_TOKENS.Logger);
  const clock = container.resolve<Clock>(AGENT_TOKENS.Clock);
  const client = container.resolve<BrainClient>(AGENT_TOKENS.BrainClient);
  const runtime = container.resolve<Runtime>(AGENT_TOKENS.Runtime);
  const cache = container.resolve<TemplateCache>(AGENT_TOKENS.TemplateCache);

  let nodeId: string | null = null;
  let manager: InstanceManager | null = null;
  let journal: ReportJournal | null = null;
  let logs: LogForwarder | null = null;
  let stats: StatsSampler | null = null;
  let health: RuntimeHealth | null = null;
  /** A runtime's availability changed since the Brain last heard: tell it on the next sync. */
  let runtimeNews = false;
  /** The Brain accepted this session (so it has something to release on stop). */
  let holding = false;
  /** Refused as a duplicate: the last refusal was logged (later ones are quieter). */
  let refused = false;
  let sessionId = newSessionId();
  /** Syncs are numbered; `received` is the last one answered (see `SyncRequest.syncNumber`). */
  let syncNumber = 0;
  let received = 0;
  /** Loads the state dir (journal, ledger, instance records) into a fresh manager. */
  let openState: () => Promise<void> = async () => undefined;
  let describeNode = true;
  let stopped = false;
  let loop: Promise<void> | null = null;
  let parked: AbortController | null = null;
  let wakeSleep: (() => void) | null = null;
  const results: CommandResultReport[] = [];
  const running = new Set<Promise<unknown>>();
  const backoff = new Backoff({ baseMs: 500, capMs: 30_000 });

  /** Something new to send: end a parked sync or a pause at once. */
  const wake = () => {
    parked?.abort();
    wakeSleep?.();
  };

  const dispatch = (command: AgentCommand) => {
    const work = manager!
      .execute(command)
      .then((result) => {
        results.push(result);
        wake();
      })
      .catch((error: unknown) =>
        log.error({ commandId: command.id, err: String(error) }, "command crashed"),
      );
    running.add(work);
    void work.finally(() => running.delete(work));
  };

  /** Takes what a sync answered; commands go to `dispatchCommand` (deferred during start). */
  const accept = (response: SyncResponse, dispatchCommand: (command: AgentCommand) => void) => {
    describeNode = false;
    holding = true;
    if (refused) log.info({ nodeId }, "the Brain accepts this agent process again");
    refused = false;
    backoff.limitCap(response.heartbeatIntervalMs);
    logs!.setWatched(response.watchLogs);
    // Brains older than live stats send no list.
    stats!.setWatched(response.watchStats ?? []);
    for (const command of response.commands) dispatchCommand(command);
  };

  /** A conflict answer: how long to stay away before asking again. */
  const onConflict = (error: OrchestratorError): number => {
    holding = false;
    const retryAfterMs = Number(error.details?.retryAfterMs);
    const wait = Number.isFinite(retryAfterMs) && retryAfterMs > 0 ? retryAfterMs : 5_000;
    // Jittered: two refused copies never come back in lockstep.
    const delay = Math.round(wait + Math.random() * Math.max(500, wait / 2));
    const details = { nodeId, retryInMs: delay };
    const message =
      "another agent process holds this node's credential (a copied state dir or credential?): this one executes nothing and retries until the other is gone";
    if (refused) log.warn(details, message);
    else log.error(details, message);
    refused = true;
    return delay;
  };

  const syncOnce = async (options: { wait?: boolean } = {}) => {
    const reports = journal!.pending(200);
    const sentResults = results.slice(0, 500);
    const logBatches = logs!.drain();
    const samples = stats!.drain();
    const runtimeChanged = runtimeNews;
    const sendRuntimes = runtimeChanged || !health!.allAvailable;
    runtimeNews = false;
    const request: SyncRequest = {
      ...(describeNode
        ? {
            node: {
              name: config.name,
              capacity: config.capacity,
              labels: config.labels,
              portRange: config.portRange,
              reservedPorts: config.reservedPorts,
              runtimes: [runtime.kind as RuntimeKind],
              agentVersion: AGENT_VERSION,
            },
          }
        : {}),
      agentSessionId: sessionId,
      syncNumber: ++syncNumber,
      received,
      inventory: manager!.inventory(),
      reports,
      commandResults: sentResults,
      logs: logBatches,
      ...(samples.stats.length > 0 ? { stats: samples.stats } : {}),
      ...(samples.unsupported.length > 0 ? { statsUnsupported: samples.unsupported } : {}),
      ...(sendRuntimes ? { runtimes: health!.statuses() } : {}),
      wait:
        (options.wait ?? true) &&
        reports.length === 0 &&
        sentResults.length === 0 &&
        logBatches.length === 0 &&
        samples.stats.length === 0 &&
        samples.unsupported.length === 0 &&
        // A status repeated while a runtime stays down may wait; a change may not.
        !runtimeChanged,
    };
    // Only a parked sync (one that carries nothing) may be cut short by news.
    const controller = new AbortController();
    if (request.wait) parked = controller;
    try {
      const response = await client.sync(request, controller.signal);
      received = request.syncNumber ?? received;
      await journal!.acknowledge(response.acknowledgedReports);
      results.splice(0, sentResults.length);
      accept(response, dispatch);
    } catch (error) {
      // Not delivered: the change goes again with the next sync.
      if (runtimeChanged) runtimeNews = true;
      if (controller.signal.aborted && !stopped) return; // woken: sync again with the news
      throw error;
    } finally {
      if (parked === controller) parked = null;
    }
  };

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeSleep = null;
        resolve();
      }
      wakeSleep = done;
    });

  const run = async () => {
    while (!stopped) {
      const started = performance.now();
      try {
        await syncOnce();
        backoff.reset();
        // A Brain that answers at once (nothing parked) is not polled faster than the heartbeat.
        const elapsed = performance.now() - started;
        const idle =
          journal!.pendingCount === 0 &&
          results.length === 0 &&
          !logs!.pending &&
          !stats!.hasPending &&
          !runtimeNews;
        if (idle && elapsed < 1000) await pause(1000 - elapsed);
      } catch (error) {
        if (OrchestratorError.hasCode(error, "AGENT_IDENTITY_CONFLICT")) {
          const lost = holding;
          await pause(onConflict(error));
          // This process held the node, fell silent (paused, cut off) and another
          // one took it over meanwhile: stop acting on the servers at once.
          if (lost && !stopped) await demote();
          continue;
        }
        const delay = backoff.next();
        log.warn({ err: String(error), retryInMs: delay }, "sync failed");
        if (OrchestratorError.hasCode(error, "UNAUTHORIZED"))
          log.error({}, "the Brain refused this node's credential");
        await pause(delay);
      }
    }
  };

  /**
   * Before touching any server, asks the Brain whether this process may hold
   * the node: a duplicate (same credential, another live process) waits here,
   * re-attaching and restarting nothing. An unreachable Brain proves nothing:
   * the agent carries on (the sync loop asks again). Commands the answer
   * carries are returned for after recovery.
   */
  const claimSession = async (): Promise<AgentCommand[]> => {
    while (!stopped) {
      // Read (again) from disk: while this process waited, the holder kept
      // writing the state dir, and the inventory sent must be the current one.
      await openState();
      try {
        const number = ++syncNumber;
        const response = await client.sync(
          {
            agentSessionId: sessionId,
            syncNumber: number,
            received,
            inventory: manager!.inventory(),
            reports: [],
            commandResults: [],
            logs: [],
            wait: false,
            // A hung Brain must not hold the agent's start (and its servers' recovery) up.
          },
          AbortSignal.timeout(5_000),
        );
        received = number;
        const deferred: AgentCommand[] = [];
        accept(response, (command) => deferred.push(command));
        // The node description still goes with the first real sync.
        describeNode = true;
        return deferred;
      } catch (error) {
        if (!OrchestratorError.hasCode(error, "AGENT_IDENTITY_CONFLICT")) return [];
        await pause(onConflict(error));
      }
    }
    return [];
  };

  /**
   * Another process holds the node now: exit watching, restarts and log/stats
   * forwarding stop, and this process waits like a newcomer (re-reading the
   * state dir) until the node is free again, then recovers as at start.
   */
  const demote = async () => {
    log.error(
      { nodeId },
      "another agent process took this node over while this one was silent: this one stops acting on its servers",
    );
    logs!.setWatched([]);
    stats!.setWatched([]);
    await manager?.close();
    const deferred = await claimSession();
    if (stopped || !manager) return;
    await manager.recover();
    for (const command of deferred) dispatch(command);
  };

  return {
    container,
    get sessionId() {
      return sessionId;
    },
    get nodeId() {
      return nodeId;
    },
    async start() {
      await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
      await mkdir(join(config.dataDir, "instances"), { recursive: true, mode: 0o700 });
      sessionId = await claimAgentSession(config.dataDir, sessionId);
      const credentialPath = join(config.dataDir, "credential.json");
      let credential = await readCredential(credentialPath);
      if (!credential) {
        if (!config.joinToken) {
          throw new OrchestratorError(
            "UNAUTHORIZED",
            "this node has not joined yet: set ORCH_JOIN_TOKEN (create one in the panel or with `orchestrator join-token`)",
          );
        }
        const joined = await client.join({
          joinToken: config.joinToken,
          name: config.name,
          capacity: config.capacity,
          labels: config.labels,
          portRange: config.portRange,
          reservedPorts: config.reservedPorts,
          runtimes: [runtime.kind as RuntimeKind],
          agentVersion: AGENT_VERSION,
        });
        credential = {
          brainUrl: config.brainUrl,
          nodeId: joined.nodeId,
          credential: joined.credential,
        };
        await writeCredential(credentialPath, credential);
        log.info({ nodeId: joined.nodeId }, "joined the Brain");
      }
      nodeId = credential.nodeId;
      client.setCredential(credential.credential);
      await cache.init();
      const node = nodeId;
      openState = async () => {
        journal = await ReportJournal.open(join(config.dataDir, "reports.jsonl"));
        manager = new InstanceManager({
          nodeId: node,
          runtimes: new Map([[runtime.kind as RuntimeKind, runtime]]),
          cache,
          journal,
          ledger: await CommandLedger.open(join(config.dataDir, "commands.jsonl")),
          records: await InstanceRecords.open(join(config.dataDir, "instances.json")),
          instancesDir: join(config.dataDir, "instances"),
          clock,
          log,
          onReport: wake,
        });
      };
      logs = new LogForwarder(() => runtime, wake);
      stats = new StatsSampler({
        runtimeOf: () => runtime,
        onSamples: wake,
        ...(overrides.statsIntervalMs ? { intervalMs: overrides.statsIntervalMs } : {}),
      });
      health = new RuntimeHealth({
        runtimes: [runtime],
        onChange: (status) => {
          runtimeNews = true;
          if (status.available) log.info({ runtime: status.kind }, "runtime available again");
          else log.error({ runtime: status.kind, reason: status.reason }, "runtime unavailable");
          wake();
        },
        now: () => clock.now(),
        ...(overrides.runtimeCheckIntervalMs
          ? { intervalMs: overrides.runtimeCheckIntervalMs }
          : {}),
        ...(overrides.runtimeCheckTimeoutMs ? { timeoutMs: overrides.runtimeCheckTimeoutMs } : {}),
      });
      const deferred = await claimSession();
      if (stopped || !manager) return;
      await manager.recover();
      for (const command of deferred) dispatch(command);
      health.start();
      loop = run();
    },
    syncOnce: (options) => syncOnce(options),
    async idle() {
      while (running.size > 0) await Promise.allSettled([...running]);
    },
    async stop() {
      stopped = true;
      wake();
      await loop?.catch(() => undefined);
      health?.stop();
      stats?.close();
      if (holding && manager) {
        // Hands the node over at once: a restarted agent is not kept waiting
        // for this process's silence window. Best effort, bounded.
        await client
          .sync(
            {
              agentSessionId: sessionId,
              releaseSession: true,
              inventory: manager.inventory(),
              reports: [],
              commandResults: [],
              logs: [],
              wait: false,
            },
            AbortSignal.timeout(2_000),
          )
          .catch(() => undefined);
        holding = false;
      }
      logs?.close();
      await manager?.close();
      await cache.destroy();
    },
  };
}
