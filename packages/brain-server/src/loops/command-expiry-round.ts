/**
 * Commands a node never answered (delivered too often, or too old) are failed,
 * and the instance that waited for them is surfaced as FAILED with the reason,
 * instead of hanging in a transitional state forever.
 */
import {
  type Clock,
  type InstanceEvent,
  type InstanceState,
  type LeaseFence,
  OrchestratorError,
  type Repositories,
} from "@orchestrator/core";
import type { LiveEvents } from "../services/live-events.js";

/** The state an instance sits in while a command of this type is outstanding. */
const WAITING: Partial<Record<string, readonly InstanceState[]>> = {
  prepare: ["SCHEDULED", "PREPARING"],
  start: ["PREPARED", "STARTING"],
};

export interface CommandExpiryOptions {
  maxAttempts: number;
  maxAgeMs: number;
}

export class CommandExpiryRound {
  constructor(
    private readonly repositories: Repositories,
    private readonly clock: Clock,
    private readonly live: LiveEvents,
    private readonly options: CommandExpiryOptions,
  ) {}

  async run(fence: LeaseFence): Promise<number> {
    const now = this.clock.now();
    const expired = await this.repositories.commands.expire({
      now,
      maxAttempts: this.options.maxAttempts,
      createdBefore: new Date(now.getTime() - this.options.maxAgeMs),
    });
    const events: InstanceEvent[] = [];
    for (const command of expired) {
      const waiting = WAITING[command.type];
      if (!waiting) continue;
      try {
        const event = await this.repositories.transaction(
          async (tx) => {
            const instance = await tx.instances.get(command.instanceId);
            if (!instance || instance.epoch !== command.epoch || !waiting.includes(instance.state))
              return null;
            const { event } = await tx.instances.transition(instance.id, {
              expected: { state: instance.state, version: instance.version },
              trigger: "fail",
              reason: `${command.type} command was not answered by the node`,
              actor: { kind: "system", id: "dispatcher" },
              at: this.clock.now(),
              change: {
                failure: {
                  kind: command.type === "prepare" ? "prepare-failed" : "start-timeout",
                  message: `${command.type} command ${command.id} expired after ${command.attempts} deliveries`,
                },
              },
            });
            return event;
          },
          { fence: { ...fence, now: this.clock.now() } },
        );
        if (event) events.push(event);
      } catch (error) {
        if (!OrchestratorError.hasCode(error, "CONFLICT")) throw error;
      }
    }
    for (const event of events) this.live.events.publish({ kind: "instance", ...event });
    return expired.length;
  }
}
