/**
 * Exponential backoff with full jitter (AWS architecture blog's "full jitter"):
 * after a failure wait a random time in [0, min(cap, base·2^attempt)], so a
 * fleet of agents reconnecting after a Brain restart never arrives in lockstep.
 */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** Injected for deterministic tests; Math.random by default. */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly random: () => number;
  private cap: number;

  constructor(private readonly options: BackoffOptions) {
    this.random = options.random ?? Math.random;
    this.cap = options.capMs;
  }

  /** The delay before the next try, and counts a failure. */
  next(): number {
    const ceiling = Math.min(this.cap, this.options.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    return Math.floor(this.random() * ceiling);
  }

  reset(): void {
    this.attempt = 0;
  }

  /**
   * Lowers (or restores) the longest wait, never above the configured cap.
   * The agent caps it at the Brain's heartbeat interval: the Brain's offline
   * timeout is at least two intervals, so after a Brain outage every agent is
   * back within the Brain's startup grace window instead of being marked
   * OFFLINE by an outage that was the Brain's own.
   */
  limitCap(ms: number): void {
    this.cap = Math.max(this.options.baseMs, Math.min(this.options.capMs, ms));
  }

  get failures(): number {
    return this.attempt;
  }
}
