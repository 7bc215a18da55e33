/**
 * Why pending instances could not be placed, as the scheduler explained it, for
 * `GET /instances/:id` and the panel. Stored through the instance repository
 * (so every Brain replica can answer, and it survives a restart), written only
 * when an instance's explanation changes: the scheduling loop retries every
 * second and must not write a row per retry.
 */
import type { Repositories } from "@orchestrator/core";
import type { Explanation } from "@orchestrator/scheduler";

export interface PendingPlacement {
  /** When the scheduler first explained it this way. */
  at: Date;
  explanation: Explanation;
}

export class PlacementExplanations {
  /** What this Brain last stored per instance (JSON), to skip writes that change nothing. */
  private readonly stored = new Map<string, string>();

  constructor(
    private readonly repositories: Repositories,
    private readonly max = 10_000,
  ) {}

  async set(instanceId: string, entry: PendingPlacement): Promise<void> {
    const json = JSON.stringify(entry.explanation);
    if (this.stored.get(instanceId) === json) return;
    await this.repositories.instances.setPendingPlacement(instanceId, entry);
    this.stored.delete(instanceId);
    this.stored.set(instanceId, json);
    if (this.stored.size > this.max) this.stored.delete(this.stored.keys().next().value as string);
  }

  /** The stored explanation; callers show it only while the instance is REQUESTED. */
  async get(instanceId: string): Promise<PendingPlacement | null> {
    const note = await this.repositories.instances.getPendingPlacement(instanceId);
    return note ? { at: note.at, explanation: note.explanation as Explanation } : null;
  }

  /** The instance was placed or destroyed: drop its explanation (a stale one is hidden anyway). */
  async clear(instanceId: string): Promise<void> {
    if (!this.stored.delete(instanceId)) return;
    await this.repositories.instances.setPendingPlacement(instanceId, null);
  }
}
