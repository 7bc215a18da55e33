import type { RuntimeLogLine, RuntimeLogOptions } from "../ports/runtime.js";

/** Bounds of a `LogBacklog`. */
export interface LogBacklogOptions {
  /** Lines kept (default 1000). */
  maxLines?: number;
  /** Characters kept over all lines (default 1 MiB worth). */
  maxBytes?: number;
  /** Lines a slow follower may lag behind before its oldest are dropped (default `maxLines`). */
  followerQueueLines?: number;
}

interface Follower {
  queue: RuntimeLogLine[];
  wake: (() => void) | null;
}

/**
 * The bounded in-memory log of one instance: a ring buffer of recent lines
 * (by count and size) plus live followers. A follower that falls too far
 * behind loses its oldest queued lines instead of growing without bound;
 * `droppedLines` counts them.
 */
export class LogBacklog {
  private readonly maxLines: number;
  private readonly maxBytes: number;
  private readonly followerQueueLines: number;
  private readonly ring: (RuntimeLogLine | undefined)[];
  private head = 0; // index of the oldest line
  private count = 0;
  private bytes = 0;
  private closed = false;
  private readonly followers = new Set<Follower>();
  /** Lines dropped from slow followers' queues since creation. */
  droppedLines = 0;

  constructor(options: LogBacklogOptions = {}) {
    this.maxLines = options.maxLines ?? 1000;
    this.maxBytes = options.maxBytes ?? 1024 * 1024;
    this.followerQueueLines = options.followerQueueLines ?? this.maxLines;
    for (const [key, value] of Object.entries({
      maxLines: this.maxLines,
      maxBytes: this.maxBytes,
      followerQueueLines: this.followerQueueLines,
    })) {
      if (!Number.isInteger(value) || value < 1) {
        throw new RangeError(`${key} must be a positive integer`);
      }
    }
    this.ring = new Array(this.maxLines);
  }

  /** Lines currently kept. */
  get size(): number {
    return this.count;
  }

  /** True once `close()` was called: no more lines, followers ended. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Appends a line, evicting the oldest beyond the bounds, and hands it to followers. */
  push(line: RuntimeLogLine): void {
    if (this.closed) return;
    const size = line.line.length + 1;
    if (this.count === this.maxLines) this.evictOldest();
    this.ring[(this.head + this.count) % this.maxLines] = line;
    this.count += 1;
    this.bytes += size;
    while (this.bytes > this.maxBytes && this.count > 1) this.evictOldest();
    for (const follower of this.followers) {
      follower.queue.push(line);
      if (follower.queue.length > this.followerQueueLines) {
        const excess = follower.queue.length - this.followerQueueLines;
        follower.queue.splice(0, excess);
        this.droppedLines += excess;
      }
      const wake = follower.wake;
      follower.wake = null;
      wake?.();
    }
  }

  /** The kept lines, oldest first: only those at or after `since`, then the last `tail`. */
  lines(options: { tail?: number; since?: Date } = {}): RuntimeLogLine[] {
    const result: RuntimeLogLine[] = [];
    const since = options.since?.getTime();
    for (let i = 0; i < this.count; i += 1) {
      const line = this.ring[(this.head + i) % this.maxLines]!;
      if (since === undefined || line.at.getTime() >= since) result.push(line);
    }
    const tail = options.tail;
    if (tail === undefined) return result;
    if (!Number.isInteger(tail) || tail < 0) throw new RangeError("tail must be an integer ≥ 0");
    return tail === 0 ? [] : result.slice(-tail);
  }

  /**
   * The kept lines (see `lines`), then, with `follow`, every new line until
   * `signal` aborts or the backlog is closed. Subscribes on the first `next()`,
   * so nothing falls between the kept lines and the live ones.
   */
  async *read(options: RuntimeLogOptions = {}): AsyncGenerator<RuntimeLogLine> {
    const { follow = false, signal, since } = options;
    const follower: Follower | null =
      follow && !this.closed && !signal?.aborted ? { queue: [], wake: null } : null;
    if (follower) this.followers.add(follower);
    const onAbort = () => {
      const wake = follower?.wake;
      if (follower) follower.wake = null;
      wake?.();
    };
    signal?.addEventListener("abort", onAbort);
    try {
      for (const line of this.lines({ tail: options.tail, since })) {
        if (signal?.aborted) return;
        yield line;
      }
      if (!follower) return;
      const sinceMs = since?.getTime();
      for (;;) {
        if (signal?.aborted) return;
        const line = follower.queue.shift();
        if (line) {
          if (sinceMs === undefined || line.at.getTime() >= sinceMs) yield line;
          continue;
        }
        if (this.closed) return;
        await new Promise<void>((resolve) => {
          follower.wake = resolve;
        });
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (follower) this.followers.delete(follower);
    }
  }

  /** Ends every follower (they first drain what is queued); later pushes are ignored. */
  close(): void {
    this.closed = true;
    for (const follower of this.followers) {
      const wake = follower.wake;
      follower.wake = null;
      wake?.();
    }
  }

  /** Number of live followers (for tests and leak checks). */
  get followerCount(): number {
    return this.followers.size;
  }

  private evictOldest(): void {
    const oldest = this.ring[this.head];
    if (!oldest) return;
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % this.maxLines;
    this.count -= 1;
    this.bytes -= oldest.line.length + 1;
  }
}
