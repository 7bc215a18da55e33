/**
 * The agent side of the Brain: one sync call per heartbeat carries reports,
 * inventory, command results and log lines up, and commands down (DESIGN §5).
 * Reports are applied in order, each at most once (per-instance seq), only for
 * the node's own instances at their current placement epoch. The inventory is
 * reconciled against what the Brain believes. A sync with nothing to say is
 * parked until a command is queued for the node.
 */
import {
  type AgentCommand,
  type Clock,
  type FailureReason,
  type IdGenerator,
  type InstanceEvent,
  type InstanceState,
  type InventoryItem,
  type Node,
  type NodeEvent,
  NodeLifecycle,
  OrchestratorError,
  type OutboxCommand,
  type PreparePayload,
  type Repositories,
  type RepositorySet,
  type StoredInstance,
  type SyncReport,
  type SyncRequest,
  type SyncResponse,
  templateRuntimes,
} from "@orchestrator/core";
import type { FastifyBaseLogger } from "fastify";
import type { BrainConfig } from "../config/brain-config.js";
import type { LivenessMonitor } from "../liveness/liveness-monitor.js";
import type { Counter } from "../metrics/metrics-registry.js";
import { AgentSessions, agentSessionWindowMs } from "./agent-sessions.js";
import { AgentSyncOrder } from "./agent-sync-order.js";
import { InstanceStats } from "./instance-stats.js";
import type { LiveEvents } from "./live-events.js";
import { NodeRuntimeStatus } from "./node-runtime-status.js";
import type { NodeSignals } from "./node-signals.js";
import type { WebhookEvent } from "./webhook-dispatcher.js";

/** Commands handed out per sync. */
const COMMANDS_PER_SYNC = 50;
/** A delivered command without a result is delivered again after this. */
const REDELIVER_AFTER_MS = 30_000;

/** States the node must know an instance in (a missing one is drift). */
const EXPECTED_ON_NODE: readonly InstanceState[] = [
  "PREPARED",
  "STARTING",
  "RUNNING",
  "STOPPING",
  "STOPPED",
];

interface Effects {
  events: InstanceEvent[];
  nodeEvents: NodeEvent[];
}

/** Samples accepted per sync (one per watched instance is what an agent sends). */
const STATS_PER_SYNC = 500;
/** A refused agent session is alerted on again after this long (it retries every window). */
const CONFLICT_ALERT_EVERY_MS = 10 * 60_000;

/** The parts of the agent protocol kept in memory beside the sync (stats, sessions, runtime health). */
export interface AgentServiceExtras {
  stats?: InstanceStats;
  sessions?: AgentSessions;
  runtimeStatus?: NodeRuntimeStatus;
  /** Operators' alert channel (webhooks). */
  alert?: (type: WebhookEvent, id: string, payload: Record<string, unknown>) => void;
  /** Counts refused syncs by node. */
  identityConflicts?: Counter;
}

/** Where a sync came from (audit entries name it). */
export interface SyncContext {
  ip?: string;
}

export class AgentService {
  readonly stats: InstanceStats;
  readonly sessions: AgentSessions;
  readonly runtimeStatus: NodeRuntimeStatus;
  /** Abandoned syncs read late, answers that never arrived (see `AgentSyncOrder`). */
  readonly syncOrder = new AgentSyncOrder();
  /** `${nodeId} ${sessionId}` → monotonic ms of the last alert about it. */
  private readonly conflictAlerts = new Map<string, number>();

  constructor(
    private readonly repositories: Repositories,
    private readonly clock: Clock,
    private readonly ids: IdGenerator,
    private readonly config: BrainConfig,
    private readonly liveness: LivenessMonitor,
    private readonly live: LiveEvents,
    private readonly signals: NodeSignals,
    private readonly log: FastifyBaseLogger,
    private readonly extras: AgentServiceExtras = {},
  ) {
    this.stats = extras.stats ?? new InstanceStats();
    this.sessions = extras.sessions ?? new AgentSessions(clock, agentSessionWindowMs(config));
    this.runtimeStatus = extras.runtimeStatus ?? new NodeRuntimeStatus();
  }

  /**
   * `authenticated` is the node as the credential check just read it (no
   * second lookup). Refused with AGENT_IDENTITY_CONFLICT when another live
   * agent process holds the node.
   */
  async sync(
    authenticated: Node,
    request: SyncRequest,
    signal?: AbortSignal,
    context: SyncContext = {},
  ): Promise<SyncResponse> {
    const sessionId = request.agentSessionId;
    // Agents older than session ids are admitted as before.
    if (sessionId === undefined) return this.syncAdmitted(authenticated, request, signal);
    await this.admitSession(authenticated, sessionId, context);
    try {
      const response = await this.syncAdmitted(authenticated, request, signal);
      if (request.releaseSession) this.sessions.release(authenticated.id, sessionId);
      return response;
    } finally {
      this.sessions.end(authenticated.id, sessionId);
    }
  }

  private async admitSession(node: Node, sessionId: string, context: SyncContext): Promise<void> {
    const verdict = this.sessions.begin(node.id, sessionId);
    if (verdict.accepted) {
      if (verdict.takeover)
        this.log.info(
          { nodeId: node.id, silentMs: verdict.takeover.silentMs },
          "a new agent process took over the node (the previous one went silent)",
        );
      return;
    }
    this.extras.identityConflicts?.inc({ node: node.id });
    const key = `${node.id} ${sessionId}`;
    const now = this.clock.monotonicMs();
    const alertedAt = this.conflictAlerts.get(key);
    if (alertedAt === undefined || now - alertedAt >= CONFLICT_ALERT_EVERY_MS) {
      this.conflictAlerts.set(key, now);
      if (this.conflictAlerts.size > 1000) {
        const oldest = this.conflictAlerts.keys().next().value;
        if (oldest !== undefined) this.conflictAlerts.delete(oldest);
      }
      await this.alertConflict(node, sessionId, verdict.holder, context);
    }
    throw new OrchestratorError(
      "AGENT_IDENTITY_CONFLICT",
      `another agent process is using the credential of node ${node.name}: this one is refused while the other is alive (a copied state dir or credential?)`,
      {
        details: {
          nodeId: node.id,
          retryAfterMs: verdict.retryAfterMs,
          retryAfterSeconds: Math.ceil(verdict.retryAfterMs / 1000),
        },
      },
    );
  }

  private async alertConflict(
    node: Node,
    refused: string,
    holder: string,
    context: SyncContext,
  ): Promise<void> {
    const at = this.clock.now();
    // Session ids are random and short-lived; a prefix identifies them in logs without
    // handing a full one to whoever reads the audit log.
    const details = {
      nodeName: node.name,
      refusedSession: refused.slice(0, 8),
      holderSession: holder.slice(0, 8),
    };
    this.log.error(
      { nodeId: node.id, ...details, ip: context.ip },
      "two agent processes use one node credential: the second is refused",
    );
    try {
      await this.repositories.audit.append({
        at,
        actor: { kind: "node", id: node.id },
        action: "node.identity-conflict",
        target: `node:${node.id}`,
        details,
        source: context.ip ?? null,
      });
    } catch (error) {
      this.log.warn({ nodeId: node.id, err: error }, "could not audit an identity conflict");
    }
    this.extras.alert?.(
      "node.identity_conflict",
      `conflict_${node.id}_${refused.slice(0, 8)}_${at.getTime()}`,
      {
        nodeId: node.id,
        ...details,
        source: context.ip ?? null,
        at: at.toISOString(),
      },
    );
  }

  private async syncAdmitted(
    authenticated: Node,
    request: SyncRequest,
    signal?: AbortSignal,
  ): Promise<SyncResponse> {
    const nodeId = authenticated.id;
    const { agentSessionId: sessionId, syncNumber } = request;
    const ordered = sessionId !== undefined && syncNumber !== undefined;
    // Abandoned by the agent and read after a newer sync (a stalled Brain): stale, do nothing.
    if (ordered && !this.syncOrder.begin(nodeId, sessionId, syncNumber, request.received ?? 0))
      return this.response(0, [], new Set());
    /** Answers the sync with `resend` (answered before, never received) and what it claimed. */
    const answer = (
      acknowledged: number,
      claimed: AgentCommand[],
      onNode: ReadonlySet<string>,
      resend: AgentCommand[],
    ) => {
      if (!ordered) return this.response(acknowledged, claimed, onNode);
      const commands = [...resend.filter((r) => !claimed.some((c) => c.id === r.id)), ...claimed];
      this.syncOrder.gave(nodeId, sessionId, syncNumber, commands);
      return this.response(acknowledged, commands, onNode);
    };
    const effects: Effects = { events: [], nodeEvents: [] };
    let node = authenticated;
    this.liveness.seen(nodeId);
    if (node.status === "OFFLINE") node = await this.comeBack(node, effects);
    if (request.node) node = await this.updateDescription(node, request);
    await this.acceptRuntimeStatus(node, request);

    let acknowledged = 0;
    for (const report of [...request.reports].sort((a, b) => a.n - b.n)) {
      await this.applyReport(node, report, effects);
      acknowledged = Math.max(acknowledged, report.n);
    }
    for (const result of request.commandResults) {
      try {
        await this.repositories.commands.complete(
          result.commandId,
          {
            ok: result.ok,
            ...(result.message === undefined ? {} : { message: result.message.slice(0, 1000) }),
          },
          this.clock.now(),
          { nodeId },
        );
      } catch (error) {
        // Another node's command id (or a forgotten one): never applied.
        if (!OrchestratorError.hasCode(error, "NOT_FOUND")) throw error;
      }
    }
    const onNode = await this.reconcileInventory(node, request.inventory, effects);
    this.acceptLogs(onNode, request);
    await this.acceptStats(node, onNode, request);
    this.publish(effects);

    let commands = await this.claim(node);
    const resend = ordered
      ? this.syncOrder.missed(nodeId, sessionId, request.received ?? 0, syncNumber)
      : [];
    const reportedSomething = request.reports.length > 0 || request.commandResults.length > 0;
    if (
      commands.length === 0 &&
      resend.length === 0 &&
      request.wait &&
      !reportedSomething &&
      this.config.syncWaitMs > 0
    ) {
      const woken = await this.signals.wait(nodeId, this.config.syncWaitMs, signal);
      if (signal?.aborted) return answer(acknowledged, [], onNode, resend);
      this.liveness.seen(nodeId);
      if (woken) commands = await this.claim(node);
    }
    return answer(acknowledged, commands, onNode, resend);
  }

  private response(
    acknowledged: number,
    commands: AgentCommand[],
    onNode: ReadonlySet<string>,
  ): SyncResponse {
    return {
      acknowledgedReports: acknowledged,
      commands,
      watchLogs: this.live.watchedInstances().filter((id) => onNode.has(id)),
      watchStats: this.stats.watchedInstances().filter((id) => onNode.has(id)),
      heartbeatIntervalMs: this.config.heartbeatIntervalMs,
    };
  }

  /** A silent node spoke again: ONLINE (or DRAINING, if an operator drained it). */
  private async comeBack(node: Node, effects: Effects): Promise<Node> {
    const now = this.clock.now();
    return this.repositories.transaction(async (tx) => {
      const current = await tx.nodes.get(node.id);
      if (current?.status !== "OFFLINE") return current ?? node;
      const status = NodeLifecycle.next("OFFLINE", "heartbeat", current.drainRequested);
      const updated = await tx.nodes.setStatus(node.id, status, { lastSeenAt: now });
      effects.nodeEvents.push(
        await tx.events.appendNodeEvent({
          nodeId: node.id,
          from: "OFFLINE",
          to: status,
          at: now,
          reason: "heartbeat resumed",
          actor: { kind: "node", id: node.id },
        }),
      );
      return updated;
    });
  }

  private async updateDescription(node: Node, request: SyncRequest): Promise<Node> {
    const { capacity, labels, runtimes, agentVersion, portRange, reservedPorts, name } =
      request.node ?? {};
    return this.repositories.nodes.updateInventory(node.id, {
      ...(capacity ? { capacity } : {}),
      ...(labels ? { labels } : {}),
      ...(runtimes ? { runtimes } : {}),
      ...(agentVersion ? { agentVersion } : {}),
      ...(portRange ? { portRange } : {}),
      ...(reservedPorts ? { reservedPorts } : {}),
      ...(name ? { name } : {}),
    });
  }

  private async applyReport(node: Node, report: SyncReport, effects: Effects): Promise<void> {
    const actor = { kind: "node", id: node.id } as const;
    try {
      await this.repositories.transaction(async (tx) => {
        const instance = await tx.instances.get(report.instanceId);
        // Only the node's own instances, at their current placement: anything else is ignored.
        if (!instance || instance.nodeId !== node.id || report.epoch !== instance.epoch) return;
        if (report.seq <= instance.reportSeq) return; // late or duplicate
        const at = new Date(report.at);
        const failure: FailureReason | null | undefined =
          report.trigger === "fail"
            ? (report.failure ?? { kind: "crashed", message: report.reason })
            : report.trigger === "start" || report.trigger === "prepare"
              ? null
              : undefined;
        const trigger = instance.state === "LOST" ? "found" : report.trigger;
        const { instance: updated, event } = await tx.instances.transition(instance.id, {
          expected: { state: instance.state, version: instance.version },
          trigger,
          ...(report.to ? { to: report.to } : {}),
          reason: report.reason.slice(0, 500),
          actor,
          at: Number.isNaN(at.getTime()) ? this.clock.now() : at,
          change: { reportSeq: report.seq, ...(failure === undefined ? {} : { failure }) },
        });
        effects.events.push(event);
        await this.followUp(tx, updated);
      });
    } catch (error) {
      if (!OrchestratorError.hasCode(error, "ILLEGAL_TRANSITION")) throw error;
      // The node saw something the Brain's table does not allow from here (it
      // missed a command, or the Brain moved on): record the seq so the report
      // is not applied again, and let the inventory reconcile the state.
      this.log.warn(
        { nodeId: node.id, instanceId: report.instanceId, trigger: report.trigger },
        "report refused",
      );
      await this.repositories.transaction(async (tx) => {
        const instance = await tx.instances.get(report.instanceId);
        if (!instance || instance.nodeId !== node.id || report.seq <= instance.reportSeq) return;
        await tx.instances.update(
          instance.id,
          { state: instance.state, version: instance.version },
          { reportSeq: report.seq },
          this.clock.now(),
        );
      });
    }
  }

  /** What the Brain does next after a node's report, in the same transaction. */
  private async followUp(tx: RepositorySet, instance: StoredInstance): Promise<void> {
    if (instance.state === "PREPARED" && instance.desiredState === "running") {
      await this.enqueue(tx, instance, "start");
    } else if (instance.state === "RUNNING" && instance.desiredState === "stopped") {
      await this.enqueue(tx, instance, "stop");
    } else if (
      instance.desiredState === "destroyed" &&
      instance.state !== "DESTROYING" &&
      instance.state !== "DESTROYED"
    ) {
      // Found again after the user destroyed it while its node was away.
      const { instance: destroying } = await tx.instances.transition(instance.id, {
        expected: { state: instance.state, version: instance.version },
        trigger: "destroy",
        reason: "destroy requested",
        actor: { kind: "system", id: "brain" },
        at: this.clock.now(),
      });
      await this.enqueue(tx, destroying, "destroy");
    }
  }

  /**
   * Compares the node's inventory with the Brain's records: copies the Brain
   * does not place there (destroyed, re-placed elsewhere, older epoch) get a
   * destroy command; LOST instances are found again in the reported state;
   * instances the node should have but does not are failed and re-prepared.
   * Returns the ids of the instances placed on the node.
   */
  private async reconcileInventory(
    node: Node,
    inventory: readonly InventoryItem[],
    effects: Effects,
  ): Promise<Set<string>> {
    const { items } = await this.repositories.instances.list({ nodeId: node.id });
    const placed = new Map(items.filter((i) => i.state !== "DESTROYED").map((i) => [i.id, i]));
    const reported = new Set<string>();
    for (const item of inventory) {
      reported.add(item.instanceId);
      const instance = placed.get(item.instanceId);
      if (!instance || item.epoch < instance.epoch) {
        await this.destroyStrayCopy(node, item);
      } else if (instance.state === "LOST") {
        await this.found(node, instance, item, effects);
      }
    }
    for (const instance of placed.values()) {
      if (reported.has(instance.id) || !EXPECTED_ON_NODE.includes(instance.state)) continue;
      await this.repairMissing(node, instance, effects);
    }
    return new Set(placed.keys());
  }

  private async destroyStrayCopy(node: Node, item: InventoryItem): Promise<void> {
    try {
      await this.repositories.commands.enqueue(
        {
          // Deterministic: one destroy per stray copy, however many syncs report it.
          id: `cmd_stray_${item.instanceId}_${item.epoch}_${node.id}`,
          nodeId: node.id,
          instanceId: item.instanceId,
          type: "destroy",
          payload: { reason: "not placed on this node" },
          epoch: item.epoch,
        },
        this.clock.now(),
      );
      this.log.info({ nodeId: node.id, instanceId: item.instanceId }, "destroying a stray copy");
    } catch (error) {
      if (!OrchestratorError.hasCode(error, "CONFLICT")) throw error;
    }
  }

  private async found(
    node: Node,
    instance: StoredInstance,
    item: InventoryItem,
    effects: Effects,
  ): Promise<void> {
    await this.repositories.transaction(async (tx) => {
      const current = await tx.instances.get(instance.id);
      if (current?.state !== "LOST" || current.nodeId !== node.id) return;
      const { instance: updated, event } = await tx.instances.transition(instance.id, {
        expected: { state: "LOST", version: current.version },
        trigger: "found",
        to: item.state,
        reason: `node ${node.name} reports it ${item.state}`,
        actor: { kind: "node", id: node.id },
        at: this.clock.now(),
        change: { reportSeq: Math.max(current.reportSeq, item.seq) },
      });
      effects.events.push(event);
      await this.followUp(tx, updated);
    });
  }

  private async repairMissing(
    node: Node,
    instance: StoredInstance,
    effects: Effects,
  ): Promise<void> {
    await this.repositories.transaction(async (tx) => {
      const current = await tx.instances.get(instance.id);
      if (!current || current.version !== instance.version) return; // moved meanwhile
      const { instance: failed, event } = await tx.instances.transition(instance.id, {
        expected: { state: current.state, version: current.version },
        trigger: "fail",
        reason: `node ${node.name} no longer has this instance`,
        actor: { kind: "system", id: "brain" },
        at: this.clock.now(),
        change: { failure: { kind: "crashed", message: "the node no longer has this instance" } },
      });
      effects.events.push(event);
      if (failed.desiredState === "running") await this.enqueue(tx, failed, "prepare");
    });
  }

  private acceptLogs(onNode: ReadonlySet<string>, request: SyncRequest): void {
    for (const batch of request.logs) {
      if (!onNode.has(batch.instanceId)) continue; // a node pushes only its own instances' logs
      this.live.pushLogs(
        batch.lines.slice(0, 1000).map((line) => ({
          instanceId: batch.instanceId,
          stream: line.stream,
          line: line.line.slice(0, 8192),
          at: line.at,
        })),
      );
    }
  }

  /**
   * Runtime health as the agent sees it: kept in memory here and, when it
   * changes, on the node row (the scheduling Brain may be another replica);
   * the scheduler avoids unavailable runtimes.
   */
  private async acceptRuntimeStatus(node: Node, request: SyncRequest): Promise<void> {
    const changes = this.runtimeStatus.report(node.id, request.runtimes);
    if (changes.length > 0) {
      const now = this.clock.now();
      await this.repositories.nodes.updateInventory(node.id, {
        unavailableRuntimes: this.runtimeStatus.unavailableOf(node.id).map((status) => {
          const since = new Date(status.since);
          return {
            kind: status.kind,
            reason: status.reason?.slice(0, 200) ?? null,
            since: Number.isNaN(since.getTime()) ? now : since,
          };
        }),
      });
    }
    for (const change of changes) {
      if (change.available)
        this.log.info({ nodeId: node.id, runtime: change.kind }, "node runtime available again");
      else
        this.log.warn(
          { nodeId: node.id, runtime: change.kind, reason: change.reason },
          "node runtime unavailable: no new placements need it there",
        );
    }
  }

  /**
   * Stats samples of the node's own RUNNING instances (anything else is
   * ignored). The memory limit is the instance's reservation when the agent
   * does not know one.
   */
  private async acceptStats(
    node: Node,
    onNode: ReadonlySet<string>,
    request: SyncRequest,
  ): Promise<void> {
    for (const instanceId of request.statsUnsupported ?? []) {
      if (onNode.has(instanceId))
        this.stats.markUnsupported(
          instanceId,
          `the runtime of this instance on node ${node.name} does not report resource usage`,
        );
    }
    for (const sample of (request.stats ?? []).slice(0, STATS_PER_SYNC)) {
      if (!onNode.has(sample.instanceId) || Number.isNaN(Date.parse(sample.at))) continue;
      const instance = await this.repositories.instances.get(sample.instanceId);
      if (instance?.nodeId !== node.id || instance.state !== "RUNNING") continue;
      const reservedBytes = instance.resources.memoryMb * 1024 * 1024;
      this.stats.push({
        instanceId: sample.instanceId,
        at: sample.at,
        cpu: sample.cpu,
        memoryBytes: sample.memoryBytes,
        memoryLimitBytes: sample.memoryLimitBytes ?? (reservedBytes > 0 ? reservedBytes : null),
        networkRxBytes: sample.networkRxBytes,
        networkTxBytes: sample.networkTxBytes,
        diskBytes: sample.diskBytes,
      });
    }
  }

  private async claim(node: Node): Promise<AgentCommand[]> {
    const now = this.clock.now();
    const claimed = await this.repositories.commands.claimDue(node.id, {
      now,
      limit: COMMANDS_PER_SYNC,
      redeliverAt: new Date(now.getTime() + REDELIVER_AFTER_MS),
    });
    const commands: AgentCommand[] = [];
    for (const command of claimed) {
      const built = await this.toAgentCommand(node, command);
      if (built) commands.push(built);
    }
    return commands;
  }

  /**
   * Builds what the agent receives. A prepare carries everything the agent
   * needs, secrets included, assembled at delivery so secrets never sit in the
   * outbox.
   */
  private async toAgentCommand(node: Node, command: OutboxCommand): Promise<AgentCommand | null> {
    const base = {
      id: command.id,
      instanceId: command.instanceId,
      type: command.type,
      epoch: command.epoch,
    };
    if (command.type !== "prepare")
      return { ...base, payload: { ...command.payload } as AgentCommand["payload"] };
    const instance = await this.repositories.instances.get(command.instanceId, {
      includeSecrets: true,
    });
    const version = instance
      ? await this.repositories.templates.getVersion(
          instance.templateName,
          instance.templateVersion,
        )
      : null;
    if (!instance || !version || instance.epoch !== command.epoch) {
      await this.repositories.commands.complete(
        command.id,
        { ok: false, message: "instance moved or gone" },
        this.clock.now(),
      );
      return null;
    }
    const supported = templateRuntimes(version.definition);
    // A node offering several of the template's runtimes gets one that answers now.
    const usable = node.runtimes.filter((kind) => supported.includes(kind));
    const runtime =
      usable.find((kind) => !this.runtimeStatus.isUnavailable(node.id, kind)) ??
      usable[0] ??
      supported[0] ??
      "process";
    const payload: PreparePayload = {
      instanceName: instance.name,
      template: {
        name: version.templateName,
        version: version.version,
        definition: version.definition,
      },
      variables: { ...instance.variables },
      ports: { ...instance.ports },
      resources: instance.resources,
      runtime,
    };
    return { ...base, payload };
  }

  private async enqueue(
    tx: RepositorySet,
    instance: StoredInstance,
    type: "start" | "stop" | "prepare" | "destroy",
  ): Promise<void> {
    await tx.commands.enqueue(
      {
        id: this.ids.next("cmd"),
        nodeId: instance.nodeId!,
        instanceId: instance.id,
        type,
        payload: {},
        epoch: instance.epoch,
      },
      this.clock.now(),
    );
  }

  private publish(effects: Effects): void {
    for (const event of effects.events) this.live.events.publish({ kind: "instance", ...event });
    for (const event of effects.nodeEvents) this.live.events.publish({ kind: "node", ...event });
  }
}
