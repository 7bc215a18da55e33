/**
 * Marks silent nodes OFFLINE and their instances LOST (not STOPPED: game
 * servers hold state, and the node may come back with them still running).
 * Nothing is re-placed. The rules (startup grace, mass silence) live in
 * `LivenessMonitor`; this round persists its verdicts.
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

  constructor(
    private readonly repositories: Repositories,
    private readonly clock: Clock,
    private readonly monitor: LivenessMonitor,
    private readonly live: LiveEvents,
  ) {}

  /** Starts watching every node the database knows (each gets a full window). */
  async load(): Promise<void> {
    for (const node of await this.repositories.nodes.list()) {
      if (node.status === "OFFLINE") this.monitor.trackOffline(node.id);
      else this.monitor.track(node.id);
    }
  }

  async run(fence: LeaseFence): Promise<string[]> {
    const sweep = this.monitor.sweep();
    this.degraded = sweep.degraded;
    for (const nodeId of sweep.offline) {
      const { nodeEvent, events } = await this.repositories.transaction(
        async (tx) => {
          const node = await tx.nodes.get(nodeId);
          if (!node || node.status === "OFFLINE")
            return { nodeEvent: null, events: [] as InstanceEvent[] };
          const now = this.clock.now();
          await tx.nodes.setStatus(
            nodeId,
            NodeLifecycle.next(node.status, "timeout", node.drainRequested),
            {
              lastSeenAt: new Date(now.getTime() - (this.monitor.silenceMs(nodeId) ?? 0)),
            },
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
          return { nodeEvent, events };
        },
        { fence: { ...fence, now: this.clock.now() } },
      );
      if (nodeEvent) this.live.events.publish({ kind: "node", ...nodeEvent });
      for (const event of events) this.live.events.publish({ kind: "instance", ...event });
    }
    return sweep.offline;
  }
}
