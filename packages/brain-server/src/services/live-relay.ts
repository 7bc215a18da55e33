/**
 * Log lines and stats samples between Brain replicas. An agent pushes what is
 * watched to the replica it syncs with; a viewer may be connected to another
 * one. Each replica declares what its own viewers watch (renewed, expiring),
 * learns what the others' viewers watch (so its agents push that too), hands
 * what it receives for them to the relay store, and reads back what others
 * received for its own viewers. A single Brain only reads the declarations
 * once per round; nothing is written while nobody watches.
 */
import type { Clock, LiveWatchEntry, NewLiveItem, Repositories } from "@orchestrator/core";
import type { FastifyBaseLogger } from "fastify";
import type { InstanceStats, RelayedStats } from "./instance-stats.js";
import type { LiveEvents, LogLineEvent } from "./live-events.js";
import type { NodeSignals } from "./node-signals.js";

export interface LiveRelayOptions {
  /** This replica's name in declarations and items (the Brain's lease holder id). */
  brainId: string;
  /** How often watches are exchanged and items read (default 500 ms). */
  roundMs?: number;
}

/** A declaration lives this long unless renewed (renewed every few rounds). */
const WATCH_TTL_MS = 10_000;
const RENEW_EVERY_MS = 3_000;
/** Items older than this are pruned: live data, not history. */
const KEEP_ITEMS_MS = 30_000;
const PRUNE_EVERY_MS = 10_000;
const PAGE = 500;
/**
 * Ids are allocated at insert and may commit out of order (MySQL): each read
 * looks this many ids back and skips the ones already delivered.
 */
const LOOKBACK_IDS = 200;

export class LiveRelay {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  /** What this replica declared last, by `kind:instanceId`. */
  private declared = new Map<string, LiveWatchEntry>();
  private lastRenewAt = Number.NEGATIVE_INFINITY;
  private lastPruneAt = Number.NEGATIVE_INFINITY;
  /** Highest item id read; null until this replica's viewers watch something. */
  private position: number | null = null;
  private readonly delivered = new Set<number>();
  private remote = new Set<string>();

  constructor(
    private readonly repositories: Repositories,
    private readonly clock: Clock,
    private readonly live: LiveEvents,
    private readonly stats: InstanceStats,
    private readonly signals: NodeSignals,
    private readonly log: FastifyBaseLogger,
    private readonly options: LiveRelayOptions,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.round()
        .catch((error: unknown) => this.log.warn({ err: error }, "live relay round failed"))
        .finally(() => {
          this.running = null;
        });
    }, this.options.roundMs ?? 500);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    if (this.declared.size > 0) {
      await this.repositories.liveRelay.unwatch(this.options.brainId).catch(() => undefined);
      this.declared.clear();
    }
  }

  /** One exchange: declare, learn, hand over, read back. */
  async round(): Promise<void> {
    const now = this.clock.monotonicMs();
    await this.declare(now);
    await this.learn();
    await this.handOver();
    await this.readBack();
    if (now - this.lastPruneAt >= PRUNE_EVERY_MS) {
      this.lastPruneAt = now;
      await this.repositories.liveRelay.prune(new Date(this.clock.now().getTime() - KEEP_ITEMS_MS));
    }
  }

  private async declare(now: number): Promise<void> {
    const entries: LiveWatchEntry[] = [
      ...this.live.viewers.local().map((instanceId) => ({
        instanceId,
        kind: "log" as const,
      })),
      ...this.stats.viewers.local().map((instanceId) => ({
        instanceId,
        kind: "stats" as const,
      })),
    ];
    const keyed = new Map(entries.map((entry) => [`${entry.kind}:${entry.instanceId}`, entry]));
    const added = [...keyed.keys()].some((key) => !this.declared.has(key));
    const removed = [...this.declared].filter(([key]) => !keyed.has(key)).map(([, entry]) => entry);
    if (entries.length > 0 && this.position === null) {
      // Read from here on: what others relay after our first declaration.
      this.position = await this.repositories.liveRelay.lastItemId();
    }
    if (entries.length > 0 && (added || now - this.lastRenewAt >= RENEW_EVERY_MS)) {
      await this.repositories.liveRelay.watch(
        this.options.brainId,
        entries,
        new Date(this.clock.now().getTime() + WATCH_TTL_MS),
      );
      this.lastRenewAt = now;
    }
    if (removed.length > 0) {
      await this.repositories.liveRelay.unwatch(this.options.brainId, removed);
    }
    this.declared = keyed;
    if (entries.length === 0) {
      this.position = null;
      this.delivered.clear();
    }
  }

  /** What the other replicas' viewers watch: agents syncing here push that too. */
  private async learn(): Promise<void> {
    const watches = await this.repositories.liveRelay.listWatches(this.clock.now());
    const logs = new Set<string>();
    const stats = new Set<string>();
    for (const watch of watches) {
      if (watch.watcher === this.options.brainId) continue;
      (watch.kind === "log" ? logs : stats).add(watch.instanceId);
    }
    this.live.viewers.setRemote(logs);
    this.stats.viewers.setRemote(stats);
    const remote = new Set([...logs, ...stats]);
    const fresh = [...remote].filter((id) => !this.remote.has(id));
    this.remote = remote;
    // A new remote viewer: wake the node's sync parked here, so its agent starts pushing now.
    for (const instanceId of fresh) {
      const instance = await this.repositories.instances.get(instanceId);
      if (instance?.nodeId) this.signals.wake(instance.nodeId);
    }
  }

  private async handOver(): Promise<void> {
    const at = this.clock.now();
    const origin = this.options.brainId;
    const items: NewLiveItem[] = [
      ...this.live.takeForwarded().map((line) => ({
        instanceId: line.instanceId,
        kind: "log" as const,
        origin,
        payload: line,
        at,
      })),
      ...this.stats.takeForwarded().map((item) => ({
        instanceId: "sample" in item ? item.sample.instanceId : item.instanceId,
        kind: "stats" as const,
        origin,
        payload: item,
        at,
      })),
    ];
    if (items.length > 0) await this.repositories.liveRelay.append(items);
  }

  private async readBack(): Promise<void> {
    if (this.position === null) return;
    let position = this.position;
    const instanceIds = [...new Set([...this.declared.values()].map((entry) => entry.instanceId))];
    for (;;) {
      const page = await this.repositories.liveRelay.listItems(
        Math.max(0, position - LOOKBACK_IDS),
        { instanceIds, exceptOrigin: this.options.brainId },
        PAGE,
      );
      const lines: LogLineEvent[] = [];
      for (const item of page) {
        if (this.delivered.has(item.id)) continue;
        this.delivered.add(item.id);
        position = Math.max(position, item.id);
        if (item.kind === "log") lines.push(item.payload as LogLineEvent);
        else this.stats.deliver(item.payload as RelayedStats);
      }
      if (lines.length > 0) this.live.deliver(lines);
      // Delivered ids behind the look-back window can never come again.
      for (const id of this.delivered) if (id <= position - LOOKBACK_IDS) this.delivered.delete(id);
      this.position = position;
      if (page.length < PAGE) return;
    }
  }
}
