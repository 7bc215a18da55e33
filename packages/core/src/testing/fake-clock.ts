import type { Clock } from "../ports/clock.js";

/** A clock that moves only when told: timeouts tested without sleeping. */
export class FakeClock implements Clock {
  private wallMs: number;
  private monotonic = 0;

  constructor(start: Date | string = "2026-01-01T00:00:00.000Z") {
    this.wallMs = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.wallMs);
  }

  monotonicMs(): number {
    return this.monotonic;
  }

  /** Moves both clocks forward. */
  advance(ms: number): void {
    if (ms < 0) throw new RangeError("a clock never goes back; use setWallClock for jumps");
    this.wallMs += ms;
    this.monotonic += ms;
  }

  /** Jumps the wall clock only (NTP correction, a changed time zone): monotonic time is untouched. */
  setWallClock(at: Date | string): void {
    this.wallMs = new Date(at).getTime();
  }
}
