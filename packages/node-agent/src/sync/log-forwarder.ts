/**
 * Pushes log lines of the instances someone is watching (the Brain names them
 * in each sync response) with the next sync. Bounded: at most `maxLines` wait
 * per instance (older ones are dropped and counted), each line at most
 * `maxLineBytes`.
 */
import type { LogBatch, Runtime } from "@orchestrator/core";

interface Watch {
  abort: AbortController;
  lines: LogBatch["lines"];
  dropped: number;
  /** The follow stopped (instance gone or not created yet): forgotten once drained. */
  ended: boolean;
}

export class LogForwarder {
  private readonly watches = new Map<string, Watch>();

  constructor(
    private readonly runtimeOf: (instanceId: string) => Runtime | null,
    private readonly onLines: () => void,
    private readonly maxLines = 500,
    private readonly maxLineBytes = 8192,
  ) {}

  /** Follows exactly these instances from now on. */
  setWatched(instanceIds: readonly string[]): void {
    const wanted = new Set(instanceIds);
    for (const [id, watch] of this.watches) {
      if (!wanted.has(id)) {
        watch.abort.abort();
        this.watches.delete(id);
      }
    }
    for (const id of wanted) if (!this.watches.has(id)) this.follow(id);
  }

  /** Lines waiting to be sent (and forgets them). */
  drain(): LogBatch[] {
    const batches: LogBatch[] = [];
    for (const [instanceId, watch] of this.watches) {
      // An ended watch is dropped after its last lines go out; the next
      // `setWatched` that still lists the instance follows it again.
      if (watch.ended) this.watches.delete(instanceId);
      if (watch.lines.length === 0 && watch.dropped === 0) continue;
      const lines = watch.lines.splice(0);
      if (watch.dropped > 0) {
        lines.unshift({
          stream: "stderr",
          line: `[orchestrator] ${watch.dropped} log lines dropped`,
          at: new Date().toISOString(),
        });
        watch.dropped = 0;
      }
      batches.push({ instanceId, lines });
    }
    return batches;
  }

  get pending(): boolean {
    for (const watch of this.watches.values()) if (watch.lines.length > 0) return true;
    return false;
  }

  close(): void {
    for (const watch of this.watches.values()) watch.abort.abort();
    this.watches.clear();
  }

  private follow(instanceId: string): void {
    const runtime = this.runtimeOf(instanceId);
    if (!runtime) return;
    const watch: Watch = { abort: new AbortController(), lines: [], dropped: 0, ended: false };
    this.watches.set(instanceId, watch);
    void (async () => {
      try {
        const lines = await runtime.logs(instanceId, {
          follow: true,
          tail: 100,
          signal: watch.abort.signal,
        });
        for await (const line of lines) {
          watch.lines.push({
            stream: line.stream,
            line: line.line.slice(0, this.maxLineBytes),
            at: line.at.toISOString(),
          });
          if (watch.lines.length > this.maxLines) {
            watch.lines.shift();
            watch.dropped += 1;
          }
          this.onLines();
        }
      } catch {
        // The instance went away, is not created yet, or the watch was cancelled.
      } finally {
        // A watch that ended is forgotten, so the next sync that still lists the
        // instance as watched follows it again (e.g. once its process exists).
        watch.ended = true;
      }
    })();
  }
}
