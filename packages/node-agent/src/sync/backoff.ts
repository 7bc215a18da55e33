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

  constructor(private readonly options: BackoffOptions) {
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next try, and counts a failure. */
  next(): number {
    const ceiling = Math.min(
      this.options.capMs,
      this.options.baseMs * 2 ** Math.min(this.attempt, 30),
    );
    this.attempt += 1;
    return Math.floor(this.random() * ceiling);
  }

  reset(): void {
    this.attempt = 0;
  }

  get failures(): number {
    return this.attempt;
  }
}
