/**
 * Watches whether the agent's runtimes answer: a cheap `list()` every
 * `intervalMs`, abandoned after `timeoutMs` (a hung Docker engine never
 * answers; the agent must not hang with it). A probe still pending when the
 * next one is due is not doubled (a hung engine would otherwise collect one
 * open call per interval): the runtime stays unavailable until that call
 * settles — a resumed engine answers it, a restarted one fails it — and the
 * next probe decides. Changes wake the sync loop so the Brain learns at once.
 */
import type { Runtime, RuntimeKind, RuntimeStatus } from "@orchestrator/core";

export interface RuntimeHealthOptions {
  runtimes: readonly Runtime[];
  /** A runtime's availability changed. */
  onChange: (status: RuntimeStatus) => void;
  intervalMs?: number;
  timeoutMs?: number;
  now?: () => Date;
}

/** Matches no instance: the probe costs one list call and returns nothing. */
const PROBE_LABELS = { "orchestrator.probe": "health" } as const;

interface Entry {
  runtime: Runtime;
  status: RuntimeStatus;
  probing: boolean;
}

export class RuntimeHealth {
  private readonly entries: Entry[];
  private timer: NodeJS.Timeout | null = null;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => Date;

  constructor(private readonly options: RuntimeHealthOptions) {
    this.intervalMs = options.intervalMs ?? 5_000;
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.now = options.now ?? (() => new Date());
    const since = this.now().toISOString();
    this.entries = options.runtimes.map((runtime) => ({
      runtime,
      status: { kind: runtime.kind as RuntimeKind, available: true, since },
      probing: false,
    }));
  }

  start(): void {
    if (this.timer) return;
    void this.check();
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Every runtime's status now. */
  statuses(): RuntimeStatus[] {
    return this.entries.map((entry) => ({ ...entry.status }));
  }

  get allAvailable(): boolean {
    return this.entries.every((entry) => entry.status.available);
  }

  /** One probe of every runtime (exposed for tests); resolves when each answered or timed out. */
  async check(): Promise<void> {
    await Promise.all(this.entries.map((entry) => this.probe(entry)));
  }

  private async probe(entry: Entry): Promise<void> {
    if (entry.probing) {
      // The previous probe has not answered for a whole interval: hung.
      this.set(
        entry,
        false,
        `${entry.runtime.kind} runtime has not answered for ${this.intervalMs} ms`,
      );
      return;
    }
    entry.probing = true;
    let timer: NodeJS.Timeout | undefined;
    const call = entry.runtime.list(PROBE_LABELS).then(
      () => null,
      (error: unknown) => (error instanceof Error ? error.message : String(error)),
    );
    // The call keeps `probing` set until it settles, however long that takes.
    void call.finally(() => {
      entry.probing = false;
    });
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(
        () => resolve(`${entry.runtime.kind} runtime did not answer within ${this.timeoutMs} ms`),
        this.timeoutMs,
      );
    });
    const failure = await Promise.race([call, timeout]);
    clearTimeout(timer);
    if (failure === null) this.set(entry, true);
    else this.set(entry, false, failure.slice(0, 500));
  }

  private set(entry: Entry, available: boolean, reason?: string): void {
    const previous = entry.status;
    if (previous.available === available && previous.reason === reason) return;
    entry.status = {
      kind: previous.kind,
      available,
      ...(reason === undefined ? {} : { reason }),
      // A new reason for the same outage keeps its start.
      since: previous.available === available ? previous.since : this.now().toISOString(),
    };
    if (previous.available !== available) this.options.onChange({ ...entry.status });
  }
}
