/**
 * Opt-in re-placement of LOST instances (DESIGN §5): a template that sets
 * `replaceLostAfterSeconds` accepts that a fresh copy elsewhere is better than
 * waiting for its node. After the grace period, a LOST instance that should be
 * running goes back to REQUESTED (its old reservation released, no node), and
 * the scheduling loop places it like a new one, with a new placement epoch.
 * Fencing: when the old node returns, its copy belongs to an older epoch on a
 * node the instance is no longer placed on, so the inventory reconcile sends it
 * a destroy; its late reports are ignored.
 */
import type { Clock, InstanceEvent, LeaseFence, Repositories } from "@orchestrator/core";
import type { LiveEvents } from "../services/live-events.js";

/** LOST instances considered per round. */
const BATCH = 500;

export class ReplacementRound {
  constructor(
    private readonly repositories: Repositories,
    private readonly clock: Clock,
    private readonly live: LiveEvents,
    /** Called when something went back to REQUESTED (wakes the scheduling loop). */
    private readonly requeued: () => void,
  ) {}

  /** One round. Returns how many instances went back to REQUESTED. */
  async run(fence: LeaseFence): Promise<number> {
    const { items } = await this.repositories.instances.list({ state: "LOST", limit: BATCH });
    // Stopped servers are not started elsewhere; destroyed ones are not revived.
    const candidates = items.filter((instance) => instance.desiredState === "running");
    if (candidates.length === 0) return 0;
    const graceByVersion = new Map<string, number | undefined>();
    const events: InstanceEvent[] = [];
    for (const instance of candidates) {
      const key = `${instance.templateName}@${instance.templateVersion}`;
      if (!graceByVersion.has(key)) {
        const version = await this.repositories.templates.getVersion(
          instance.templateName,
          instance.templateVersion,
        );
        graceByVersion.set(key, version?.definition.replaceLostAfterSeconds);
      }
      const graceSeconds = graceByVersion.get(key);
      if (graceSeconds === undefined) continue;
      // LOST instances change only on their way out of LOST: updatedAt is when it was lost.
      const lostForMs = this.clock.now().getTime() - instance.updatedAt.getTime();
      if (lostForMs < graceSeconds * 1000) continue;
      const event = await this.repositories.transaction(
        async (tx) => {
          const current = await tx.instances.get(instance.id);
          if (current?.state !== "LOST" || current.version !== instance.version) return null;
          await tx.nodes.release(instance.id);
          const { event } = await tx.instances.transition(instance.id, {
            expected: { state: "LOST", version: current.version },
            trigger: "reschedule",
            reason: `lost for ${Math.floor(lostForMs / 1000)} s (template re-places after ${graceSeconds} s)`,
            actor: { kind: "system", id: "replacement" },
            at: this.clock.now(),
            change: { nodeId: null, ports: {} },
          });
          return event;
        },
        { fence: { ...fence, now: this.clock.now() } },
      );
      if (event) events.push(event);
    }
    for (const event of events) this.live.events.publish({ kind: "instance", ...event });
    if (events.length > 0) this.requeued();
    return events.length;
  }
}
