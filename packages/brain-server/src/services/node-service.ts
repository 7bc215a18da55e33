/**
 * Nodes: one-time join tokens, joining, drain/undrain, removal. Liveness is in
 * memory (`LivenessMonitor`); the database changes on transitions only.
 */
import {
  type Actor,
  type Clock,
  type IdGenerator,
  type JoinRequest,
  type JoinResponse,
  type JoinToken,
  type Node,
  NodeLifecycle,
  type NodeTrigger,
  NotFoundError,
  type Repositories,
  type RuntimeStatus,
  type StoredInstance,
  UnauthorizedError,
} from "@orchestrator/core";
import { generateSecret, hashSecret } from "../auth/secret-tokens.js";
import type { BrainConfig } from "../config/brain-config.js";
import type { LivenessMonitor } from "../liveness/liveness-monitor.js";
import type { LiveEvents } from "./live-events.js";
import { type NodeRuntimeStatus, runtimeStatusesOf } from "./node-runtime-status.js";

export interface NodeView extends Omit<Node, "unavailableRuntimes"> {
  /** Milliseconds since the last heartbeat this Brain saw, or null. */
  silenceMs: number | null;
  /**
   * Runtimes the node's agent reports unavailable (a stopped or hung Docker
   * engine), with the reason; empty when every runtime answers. Nothing that
   * needs one of them is placed on the node.
   */
  unavailableRuntimes: RuntimeStatus[];
}

export class NodeService {
  constructor(
    private readonly repositories: Repositories,
    private readonly clock: Clock,
    private readonly ids: IdGenerator,
    private readonly config: BrainConfig,
    private readonly liveness: LivenessMonitor,
    private readonly live: LiveEvents,
    private readonly runtimeStatus: NodeRuntimeStatus | null = null,
  ) {}

  view(node: Node): NodeView {
    return {
      ...node,
      silenceMs: this.liveness.silenceMs(node.id),
      // From the node row: the agent may sync with another Brain replica.
      unavailableRuntimes: runtimeStatusesOf(node),
    };
  }

  list(): Promise<Node[]> {
    return this.repositories.nodes.list();
  }

  async get(id: string): Promise<{ node: Node; instances: StoredInstance[] }> {
    const node = await this.repositories.nodes.get(id);
    if (!node) throw new NotFoundError("node", id);
    const { items } = await this.repositories.instances.list({ nodeId: id });
    return { node, instances: items.filter((instance) => instance.state !== "DESTROYED") };
  }

  async createJoinToken(
    actor: Actor,
    expiresInMinutes: number,
    ip: string | null,
  ): Promise<{ token: JoinToken; secret: string }> {
    const now = this.clock.now();
    const secret = generateSecret("joinToken");
    const token = await this.repositories.transaction(async (tx) => {
      const created = await tx.joinTokens.create(
        {
          id: this.ids.next("join"),
          createdBy: actor.kind === "user" ? actor.id : null,
          createdAt: now,
          expiresAt: new Date(now.getTime() + expiresInMinutes * 60_000),
        },
        hashSecret(secret),
      );
      await tx.audit.append({
        at: now,
        actor,
        action: "node.join-token.create",
        target: `join-token:${created.id}`,
        details: { expiresAt: created.expiresAt.toISOString() },
        source: ip,
      });
      return created;
    });
    return { token, secret };
  }

  listJoinTokens(): Promise<JoinToken[]> {
    return this.repositories.joinTokens.list();
  }

  /** A node joins with a one-time token and receives its node credential. */
  async join(request: JoinRequest, ip: string | null): Promise<JoinResponse> {
    const now = this.clock.now();
    const credential = generateSecret("nodeCredential");
    const nodeId = this.ids.next("node");
    const node = await this.repositories.transaction(async (tx) => {
      const created = await tx.nodes.create(
        {
          id: nodeId,
          name: request.name,
          labels: request.labels,
          capacity: request.capacity,
          overcommit: 1,
          portRange: request.portRange,
          reservedPorts: request.reservedPorts,
          runtimes: request.runtimes,
          agentVersion: request.agentVersion,
        },
        hashSecret(credential),
        now,
      );
      const token = await tx.joinTokens.consume(hashSecret(request.joinToken), now, nodeId);
      if (!token) throw new UnauthorizedError("invalid, expired or already used join token");
      await tx.audit.append({
        at: now,
        actor: { kind: "node", id: nodeId },
        action: "node.join",
        target: `node:${nodeId}`,
        details: { name: request.name, joinToken: token.id },
        source: ip,
      });
      await tx.events.appendNodeEvent({
        nodeId,
        from: "OFFLINE",
        to: "ONLINE",
        at: now,
        reason: "joined",
        actor: { kind: "node", id: nodeId },
      });
      return created;
    });
    this.liveness.seen(node.id);
    return { nodeId: node.id, credential, heartbeatIntervalMs: this.config.heartbeatIntervalMs };
  }

  /** drain / undrain: the operator's intent survives an outage. */
  async setDrain(id: string, drain: boolean, actor: Actor, ip: string | null): Promise<Node> {
    const trigger: NodeTrigger = drain ? "drain" : "undrain";
    const now = this.clock.now();
    const { node, event } = await this.repositories.transaction(async (tx) => {
      const current = await tx.nodes.get(id);
      if (!current) throw new NotFoundError("node", id);
      const status = NodeLifecycle.next(current.status, trigger, drain);
      const updated = await tx.nodes.setStatus(id, status, { drainRequested: drain });
      const logged =
        status === current.status
          ? null
          : await tx.events.appendNodeEvent({
              nodeId: id,
              from: current.status,
              to: status,
              at: now,
              reason: trigger,
              actor,
            });
      await tx.audit.append({
        at: now,
        actor,
        action: `node.${trigger}`,
        target: `node:${id}`,
        details: {},
        source: ip,
      });
      return { node: updated, event: logged };
    });
    if (event) this.live.events.publish({ kind: "node", ...event });
    return node;
  }

  /** Removes a node that holds no instance (CONFLICT otherwise). */
  async delete(id: string, actor: Actor, ip: string | null): Promise<void> {
    await this.repositories.transaction(async (tx) => {
      await tx.nodes.delete(id);
      await tx.audit.append({
        at: this.clock.now(),
        actor,
        action: "node.delete",
        target: `node:${id}`,
        details: {},
        source: ip,
      });
    });
    this.liveness.forget(id);
    this.runtimeStatus?.forget(id);
  }
}
