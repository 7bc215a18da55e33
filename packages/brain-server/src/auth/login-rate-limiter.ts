/**
 * Login throttling per account and per IP (a fixed window per key, on the
 * injected clock). Failed attempts count; a success clears the account's count.
 */
import { type Clock, RateLimitedError } from "@orchestrator/core";

interface Window {
  startedAt: number;
  failures: number;
}

export class LoginRateLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly clock: Clock,
    private readonly maxAttempts: number,
    private readonly windowMs: number,
  ) {}

  /** Throws RATE_LIMITED (with retryAfterSeconds) when the account or the IP is over the limit. */
  check(username: string, ip: string): void {
    for (const key of [`user:${username.toLowerCase()}`, `ip:${ip}`]) {
      const window = this.current(key);
      if (window && window.failures >= this.maxAttempts) {
        const retryAfterMs = window.startedAt + this.windowMs - this.clock.monotonicMs();
        throw new RateLimitedError(
          "too many login attempts; try again later",
          Math.max(1, retryAfterMs / 1000),
        );
      }
    }
  }

  recordFailure(username: string, ip: string): void {
    for (const key of [`user:${username.toLowerCase()}`, `ip:${ip}`]) {
      const window = this.current(key) ?? { startedAt: this.clock.monotonicMs(), failures: 0 };
      window.failures += 1;
      this.windows.set(key, window);
    }
    if (this.windows.size > 100_000) this.prune();
  }

  recordSuccess(username: string): void {
    this.windows.delete(`user:${username.toLowerCase()}`);
  }

  private current(key: string): Window | null {
    const window = this.windows.get(key);
    if (!window) return null;
    if (this.clock.monotonicMs() - window.startedAt >= this.windowMs) {
      this.windows.delete(key);
      return null;
    }
    return window;
  }

  private prune(): void {
    for (const key of this.windows.keys()) this.current(key);
  }
}
