/** Time, injected so that timeouts and ordering are testable without sleeping. */
export interface Clock {
  /** Wall-clock time, for timestamps shown to people and stored in records. */
  now(): Date;
  /**
   * Monotonic milliseconds (never goes back, unrelated to the wall clock).
   * Liveness and timeouts are measured on this.
   */
  monotonicMs(): number;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => new Date(),
  monotonicMs: () => performance.now(),
};
