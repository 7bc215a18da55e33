/**
 * Marks silent nodes OFFLINE and their instances LOST (not STOPPED: game
 * servers hold state, and the node may come back with them still running).
 * The rules (startup grace, mass silence) live in `LivenessMonitor`; this
 * round persists its verdicts.
 *
 * Several Brains: only the liveness lease holder runs `run`, but agents sync
 * with whichever Brain their load balancer picks. The others `relay` the
 * nodes they heard from: one batched `touchMany` per relay interval (never a
 * write per heartbeat; a single Brain writes nothing). The holder re-reads the
 * nodes every relay interval and counts a changed last-seen time as a
 * heartbeat heard now, on its own monotonic clock: other Brains' wall clocks
 * are only compared with themselves. A node heard only elsewhere may so be
 * declared OFFLINE up to two relay intervals late, never early.
 */
import {
  type Clock,
  INSTANCE_STATES,
  type InstanceEvent,
  InstanceLifecycle,
  type InstanceState,
  type LeaseFence,
  type NodeEvent,
  NodeLifecycle,
  type Repositories,
} from "@orchestrator/core";
import type { LivenessMonitor } from "../liveness/liveness-monitor.js";
import type { LiveEvents } from "../services/live-events.js";

/** States an instance can be LOST from (the lifecycle table decides). */
const LOSABLE: readonly InstanceState[] = INSTANCE_STATES.filter((state) =>
  InstanceLifecycle.can(state, "lose"),
);

export class LivenessRound {
  /** Whether the last round suspected the Brain itself (metrics, readiness). */
  degraded = false;
  /** The lease epoch of the last round run as holder (a new one means a take-over). */
  private epoch: number | null = null;
  /** Last-seen time (ms) each node had in the database when this Brain last read it. */
  private readonly persistedSeen = new Map<string, number | null>();
  private lastRefreshAt = Number.NEGATIVE_INFINITY;
  private lastRelayAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly repositories: Repositories,
    private readonly clock: Clock,
    private readonly monitor: LivenessMonitor,
    private readonly live: LiveEvents,
    /** How often heartbeats are relayed and re-read (keep it well under the offline timeout). */
    private readonly relayIntervalMs: number,
  ) {}

  /** Starts watching every node the database knows (each gets a full window). */
  async load(): Promise<void> {
    await this.refresh();
  }

  /** One round of a Brain that does not hold the liveness lease: relay what it heard. */
  async relay(): Promise<void> {
    this.epoch = null;
    const now = this.clock.monotonicMs();
    if (now - this.lastRelayAt < this.relayIntervalMs) return;
    this.lastRelayAt = now;
    const heard = this.monitor.takeHeard();
    if (heard.length > 0) await this.repositories.nodes.touchMany(heard, this.clock.now());
  }

  async run(fence: LeaseFence): Promise<string[]> {
    if (fence.epoch !== this.epoch) {
      // Taken over (or first round): heartbeats went to the previous holder.
      // The full window this gives also covers the next regular refresh.
      this.epoch = fence.epoch;
      this.monitor.restartGrace();
    }
    this.monitor.takeHeard(); // the holder's own heartbeats are in its monitor already
    if (this.clock.monotonicMs() - this.lastRefreshAt >= this.relayIntervalMs) {
      await this.refresh();
    }
    const sweep = this.monitor.sweep();
    this.degraded = sweep.degraded;
    for (const nodeId of sweep.offline) {
      const { nodeEvent, events, lastSeenAt } = await this.repositories.transaction(
        async (tx) => {
          const node = await tx.nodes.get(nodeId);
          if (!node || node.status === "OFFLINE")
            return { nodeEvent: null, events: [] as InstanceEvent[], lastSeenAt: null };
          const now = this.clock.now();
          const lastSeenAt = new Date(now.getTime() - (this.monitor.silenceMs(nodeId) ?? 0));
          await tx.nodes.setStatus(
            nodeId,
            NodeLifecycle.next(node.status, "timeout", node.drainRequested),
            { lastSeenAt },
          );
          const nodeEvent: NodeEvent = await tx.events.appendNodeEvent({
            nodeId,
            from: node.status,
            to: "OFFLINE",
            at: now,
            reason: "no heartbeat",
            actor: { kind: "system", id: "liveness" },
          });
          const { items } = await tx.instances.list({ nodeId, state: LOSABLE });
          const events: InstanceEvent[] = [];
          for (const instance of items) {
            const { event } = await tx.instances.transition(instance.id, {
              expected: { state: instance.state, version: instance.version },
              trigger: "lose",
              reason: `node ${node.name} went offline`,
              actor: { kind: "system", id: "liveness" },
              at: now,
            });
            events.push(event);
          }
          return { nodeEvent, events, lastSeenAt };
        },
        { fence: { ...fence, now: this.clock.now() } },
      );
      // Our own write is not a relayed heartbeat.
      if (lastSeenAt) this.persistedSeen.set(nodeId, lastSeenAt.getTime());
      if (nodeEvent) this.live.events.publish({ kind: "node", ...nodeEvent });
      for (const event of events) this.live.events.publish({ kind: "instance", ...event });
    }
    return sweep.offline;
  }

  /**
   * Brings the monitor in line with the database: nodes that joined through
   * another Brain are watched, deleted ones forgotten, and a last-seen time
   * that changed since the previous read (a relay, or a return handled by
   * another Brain) counts as a heartbeat heard now.
   */
  private async refresh(): Promise<void> {
    this.lastRefreshAt = this.clock.monotonicMs();
    const nodes = await this.repositories.nodes.list();
    const known = new Set(this.monitor.tracked());
    const present = new Set<string>();
    for (const node of nodes) {
      present.add(node.id);
      const seenAt = node.lastSeenAt?.getTime() ?? null;
      const previous = this.persistedSeen.get(node.id);
      this.persistedSeen.set(node.id, seenAt);
      if (!known.has(node.id)) {
        if (node.status === "OFFLINE") this.monitor.trackOffline(node.id);
        else this.monitor.track(node.id);
      } else if (
        (previous !== undefined && seenAt !== previous) ||
        (node.status !== "OFFLINE" && this.monitor.isOffline(node.id))
      ) {
        this.monitor.seenElsewhere(node.id);
      }
    }
    for (const id of known) {
      if (present.has(id)) continue;
      this.monitor.forget(id);
      this.persistedSeen.delete(id);
    }
  }
}
