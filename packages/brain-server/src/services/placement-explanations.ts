/**
 * Why pending instances could not be placed, as the scheduler explained it, for
 * `GET /instances/:id` and the panel. Kept in memory by the Brain that ran the
 * scheduling loop (recomputed on every attempt), bounded.
 */
import type { Explanation } from "@orchestrator/scheduler";

export interface PendingPlacement {
  at: Date;
  explanation: Explanation;
}

export class PlacementExplanations {
  private readonly entries = new Map<string, PendingPlacement>();

  constructor(private readonly max = 10_000) {}

  set(instanceId: string, entry: PendingPlacement): void {
    this.entries.delete(instanceId);
    this.entries.set(instanceId, entry);
    if (this.entries.size > this.max)
      this.entries.delete(this.entries.keys().next().value as string);
  }

  get(instanceId: string): PendingPlacement | null {
    return this.entries.get(instanceId) ?? null;
  }

  delete(instanceId: string): void {
    this.entries.delete(instanceId);
  }
}
