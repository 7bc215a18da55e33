/**
 * A background loop that runs only while this Brain holds its lease, so
 * several replicas on one database never do the same work twice. Each round
 * renews the lease and passes its fence to the work, whose writes check it.
 */
import type { Clock, LeaseFence, LeaseRepository } from "@orchestrator/core";
import type { FastifyBaseLogger } from "fastify";

export interface LeasedLoopOptions {
  name: string;
  holder: string;
  intervalMs: number;
  /** Lease lifetime; renewed every round (default 3 intervals, at least 5 s). */
  ttlMs?: number;
}

export class LeasedLoop {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = true;
  private wakeRequested = false;

  constructor(
    private readonly leases: LeaseRepository,
    private readonly clock: Clock,
    private readonly log: FastifyBaseLogger,
    private readonly options: LeasedLoopOptions,
    private readonly work: (fence: LeaseFence) => Promise<void>,
    /** Runs instead of `work` in rounds where another Brain holds the lease. */
    private readonly idle?: () => Promise<void>,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
    await this.leases.release(this.options.name, this.options.holder).catch(() => undefined);
  }

  /** Runs a round soon (e.g. a new instance to schedule) instead of at the next interval. */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.wakeRequested = true;
      return;
    }
    this.schedule(0);
  }

  /** One round: take or renew the lease, then work. Returns false when another Brain holds it. */
  async runOnce(): Promise<boolean> {
    const ttl = this.options.ttlMs ?? Math.max(5_000, 3 * this.options.intervalMs);
    const now = this.clock.now();
    const lease = await this.leases.acquire(this.options.name, this.options.holder, ttl, now);
    if (!lease) {
      await this.idle?.();
      return false;
    }
    await this.work({ name: lease.name, holder: lease.holder, epoch: lease.epoch, now });
    return true;
  }

  private schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.runOnce()
        .then(() => undefined)
        .catch((error: unknown) =>
          this.log.warn({ err: error, loop: this.options.name }, "background loop round failed"),
        )
        .finally(() => {
          this.running = null;
          if (this.stopped) return;
          const again = this.wakeRequested;
          this.wakeRequested = false;
          this.schedule(again ? 0 : this.options.intervalMs);
        });
    }, delayMs);
    this.timer.unref?.();
  }
}
