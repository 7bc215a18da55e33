/**
 * Samples `runtime.stats()` of the instances whose stats someone watches (the
 * Brain names them in each sync response) every `intervalMs`, and keeps the
 * latest sample per instance for the next sync. Bounded: one pending sample
 * per watched instance, one sampling round at a time (a slow runtime delays
 * the next round instead of piling calls up), and at most one wake-up of the
 * sync loop per round.
 */
import type { InstanceStatsSample, Runtime } from "@orchestrator/core";

export interface StatsSamplerOptions {
  /** The runtime of an instance (null when the agent does not know it). */
  runtimeOf: (instanceId: string) => Runtime | null;
  /** New samples are waiting: the sync loop sends them now. */
  onSamples: () => void;
  /** Time between samples of one instance (default 2 s). */
  intervalMs?: number;
  /** A `stats()` call that takes longer is abandoned for this round (default 5 s). */
  timeoutMs?: number;
}

export class StatsSampler {
  private watched: string[] = [];
  private readonly pending = new Map<string, InstanceStatsSample>();
  /** Watched instances whose runtime has no stats, not yet told to the Brain. */
  private readonly unsupportedNew = new Set<string>();
  /** Already told (per watch): not repeated on every round. */
  private readonly unsupportedTold = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private sampling = false;
  private closed = false;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly options: StatsSamplerOptions) {
    this.intervalMs = options.intervalMs ?? 2_000;
    this.timeoutMs = options.timeoutMs ?? 5_000;
  }

  /** Samples exactly these instances from now on (an empty list stops sampling). */
  setWatched(instanceIds: readonly string[]): void {
    if (this.closed) return;
    const wanted = new Set(instanceIds);
    for (const id of this.pending.keys()) if (!wanted.has(id)) this.pending.delete(id);
    for (const id of [...this.unsupportedTold])
      if (!wanted.has(id)) this.unsupportedTold.delete(id);
    for (const id of [...this.unsupportedNew]) if (!wanted.has(id)) this.unsupportedNew.delete(id);
    const added = instanceIds.some((id) => !this.watched.includes(id));
    this.watched = [...wanted];
    if (this.watched.length === 0) {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      return;
    }
    if (!this.timer) {
      this.timer = setInterval(() => void this.sample(), this.intervalMs);
      this.timer.unref();
    }
    // A new viewer gets a first figure now, not one interval later.
    if (added) void this.sample();
  }

  /** Samples waiting to be sent (and forgets them). */
  drain(): { stats: InstanceStatsSample[]; unsupported: string[] } {
    const stats = [...this.pending.values()];
    this.pending.clear();
    const unsupported = [...this.unsupportedNew];
    for (const id of unsupported) this.unsupportedTold.add(id);
    this.unsupportedNew.clear();
    return { stats, unsupported };
  }

  get hasPending(): boolean {
    return this.pending.size > 0 || this.unsupportedNew.size > 0;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.watched = [];
    this.pending.clear();
  }

  /** One round over every watched instance (exposed for tests). */
  async sample(): Promise<void> {
    if (this.sampling || this.closed) return;
    this.sampling = true;
    try {
      let news = false;
      await Promise.all(
        this.watched.map(async (instanceId) => {
          const runtime = this.options.runtimeOf(instanceId);
          if (!runtime) return;
          if (!runtime.capabilities.supportsStats) {
            if (!this.unsupportedTold.has(instanceId) && !this.unsupportedNew.has(instanceId)) {
              this.unsupportedNew.add(instanceId);
              news = true;
            }
            return;
          }
          const sample = await this.statsOf(runtime, instanceId);
          // Unwatched meanwhile, or no figures (not running, gone, engine down): nothing to send.
          if (!sample || !this.watched.includes(instanceId)) return;
          this.pending.set(instanceId, sample);
          news = true;
        }),
      );
      if (news) this.options.onSamples();
    } finally {
      this.sampling = false;
    }
  }

  private async statsOf(runtime: Runtime, instanceId: string): Promise<InstanceStatsSample | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), this.timeoutMs);
    });
    try {
      const stats = await Promise.race([runtime.stats(instanceId), timeout]);
      if (!stats) return null;
      const finite = (value: number | undefined) =>
        value !== undefined && Number.isFinite(value) && value >= 0 ? value : null;
      return {
        instanceId,
        at: stats.at.toISOString(),
        cpu: finite(stats.cpu) ?? 0,
        memoryBytes: finite(stats.memoryBytes) ?? 0,
        // The Brain fills in the instance's reservation (it knows it; the runtime port does not say).
        memoryLimitBytes: null,
        networkRxBytes: finite(stats.networkRxBytes),
        networkTxBytes: finite(stats.networkTxBytes),
        diskBytes: finite(stats.diskBytes),
      };
    } catch {
      return null;
    } finally {
      clearTimeout(timer);
    }
  }
}
