/**
 * Live resource usage of instances: which instances someone watches (agents
 * sample only those, ~every 2 s, and push the samples with their sync), the
 * latest sample per instance (memory only, bounded; dropped when the instance
 * leaves RUNNING), and the fan-out to `GET /instances/:id/stats` streams. Like
 * log lines, stats are never written to the database.
 */
import type { InstanceStatsSample, LoggedEvent } from "@orchestrator/core";
import { EventHub } from "../events/event-hub.js";
import { Viewers } from "./viewers.js";

/** An instance whose runtime cannot report stats (sent once to its viewers). */
export interface StatsUnsupported {
  instanceId: string;
  reason: string;
}

export interface InstanceStatsOptions {
  /** Latest samples kept at most (the oldest are forgotten first). */
  maxInstances?: number;
  /** Called when an instance gets its first viewer: wake its node's parked sync so sampling starts now. */
  onFirstWatch?: (instanceId: string, nodeId: string | null) => void;
}

/** What flows to other replicas: a sample, or why the runtime gives none. */
export type RelayedStats =
  | { sample: InstanceStatsSample }
  | { instanceId: string; unsupported: string };

/** Items kept for other replicas between two relay rounds (beyond that, they are dropped). */
const MAX_FORWARDED = 10_000;

export class InstanceStats {
  readonly samples = new EventHub<InstanceStatsSample>();
  readonly unsupported = new EventHub<StatsUnsupported>();
  /** Stats viewers; when the last one leaves, the runtime is asked again next time (it may have changed). */
  readonly viewers = new Viewers({
    last: (instanceId) => this.unsupportedReasons.delete(instanceId),
  });
  /** Insertion order = age: the first entry is the oldest (evicted first). */
  private readonly latest = new Map<string, InstanceStatsSample>();
  private readonly unsupportedReasons = new Map<string, string>();
  private readonly maxInstances: number;
  /** What arrived here for viewers on other replicas, until `LiveRelay` takes it. */
  private forwarded: RelayedStats[] = [];

  constructor(private readonly options: InstanceStatsOptions = {}) {
    this.maxInstances = options.maxInstances ?? 10_000;
  }

  /** Counts a viewer of `instanceId` until the returned function is called. */
  watch(instanceId: string, nodeId: string | null = null): () => void {
    const first = !this.viewers.watchedLocally(instanceId);
    const release = this.viewers.add(instanceId);
    if (first) this.options.onFirstWatch?.(instanceId, nodeId);
    return release;
  }

  /** Instances agents must sample: watched here or on another replica. */
  watchedInstances(): string[] {
    return this.viewers.all();
  }

  /** Samples and unsupported notices to hand to other replicas since the last call. */
  takeForwarded(): RelayedStats[] {
    const items = this.forwarded;
    this.forwarded = [];
    return items;
  }

  /** Applies what another replica relayed (without relaying it again). */
  deliver(item: RelayedStats): void {
    if ("sample" in item) this.record(item.sample);
    else this.notifyUnsupported(item.instanceId, item.unsupported);
  }

  /** Keeps `sample` as the instance's latest and sends it to its viewers (here and on other replicas). */
  push(sample: InstanceStatsSample): void {
    this.forward(sample.instanceId, { sample });
    this.record(sample);
  }

  private forward(instanceId: string, item: RelayedStats): void {
    if (this.viewers.watchedRemotely(instanceId) && this.forwarded.length < MAX_FORWARDED) {
      this.forwarded.push(item);
    }
  }

  private record(sample: InstanceStatsSample): void {
    const previous = this.latest.get(sample.instanceId);
    // Late (out of order) samples never replace a newer one.
    if (previous && Date.parse(previous.at) > Date.parse(sample.at)) return;
    this.latest.delete(sample.instanceId);
    this.latest.set(sample.instanceId, sample);
    while (this.latest.size > this.maxInstances) {
      const oldest = this.latest.keys().next().value;
      if (oldest === undefined) break;
      this.latest.delete(oldest);
    }
    this.samples.publish(sample);
  }

  markUnsupported(instanceId: string, reason: string): void {
    this.forward(instanceId, { instanceId, unsupported: reason });
    this.notifyUnsupported(instanceId, reason);
  }

  private notifyUnsupported(instanceId: string, reason: string): void {
    if (this.unsupportedReasons.get(instanceId) === reason) return;
    this.unsupportedReasons.set(instanceId, reason);
    this.unsupported.publish({ instanceId, reason });
  }

  /** The latest sample, or null (none yet, or the instance is not RUNNING). */
  latestOf(instanceId: string): InstanceStatsSample | null {
    return this.latest.get(instanceId) ?? null;
  }

  /** Why the instance's runtime gives no stats, or null when it does (or is not known yet). */
  unsupportedReason(instanceId: string): string | null {
    return this.unsupportedReasons.get(instanceId) ?? null;
  }

  /** Forgets the latest sample (the instance stopped, failed, was lost or destroyed). */
  forget(instanceId: string): void {
    this.latest.delete(instanceId);
  }

  /** Feed of lifecycle events: a sample is only true while its instance is RUNNING. */
  onEvent(event: LoggedEvent): void {
    if (event.kind === "instance" && event.to !== "RUNNING") this.forget(event.instanceId);
  }

  get size(): number {
    return this.latest.size;
  }
}
