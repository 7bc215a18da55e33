/**
 * The durable event log, tailed for live streams (`GET /events`). Every Brain
 * replica writes events to the shared repository but publishes in memory only
 * what it did itself; a panel connected to one replica must also see what the
 * others did (an agent syncing elsewhere, another replica's scheduler). So
 * streams are fed from the log, in `seq` order, never from the local hub: a
 * local event only makes the feed look at once, and a poll every `pollMs`
 * brings the other replicas' events. The feed runs only while someone listens.
 */
import type { EventRepository, LoggedEvent } from "@orchestrator/core";
import type { FastifyBaseLogger } from "fastify";
import { EventHub, type Unsubscribe } from "./event-hub.js";

/** Events read per query. */
const PAGE = 500;

export class EventFeed {
  private readonly hub = new EventHub<LoggedEvent>();
  /** Highest seq delivered; null while nobody listens. */
  private position: number | null = null;
  private starting: Promise<void> | null = null;
  private reading: Promise<void> | null = null;
  private readAgain = false;
  private timer: NodeJS.Timeout | null = null;
  private stopLocal: Unsubscribe | null = null;

  constructor(
    private readonly events: EventRepository,
    /** Events this Brain published itself: a hint to read now. */
    private readonly local: EventHub<LoggedEvent>,
    private readonly log: FastifyBaseLogger,
    private readonly pollMs = 1_000,
  ) {}

  /**
   * Listens to every event committed after this call resolves, in seq order.
   * Earlier ones are the caller's to replay (`EventRepository.listAfter`).
   */
  async subscribe(listener: (event: LoggedEvent) => void): Promise<Unsubscribe> {
    const unsubscribe = this.hub.subscribe(listener);
    if (this.position === null) {
      this.starting ??= this.start().finally(() => {
        this.starting = null;
      });
      await this.starting;
    }
    return () => {
      unsubscribe();
      if (this.hub.size === 0) this.stop();
    };
  }

  private async start(): Promise<void> {
    this.position = await this.events.lastSeq();
    this.stopLocal = this.local.subscribe(() => this.read());
    this.timer = setInterval(() => this.read(), this.pollMs);
    this.timer.unref();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopLocal?.();
    this.stopLocal = null;
    this.position = null;
  }

  /** Reads what is new; calls while a read runs coalesce into one more read. */
  private read(): void {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = this.readNew()
      .catch((error: unknown) => this.log.warn({ err: error }, "reading new events failed"))
      .finally(() => {
        this.reading = null;
        if (this.readAgain && this.position !== null) {
          this.readAgain = false;
          this.read();
        }
      });
  }

  private async readNew(): Promise<void> {
    for (;;) {
      if (this.position === null) return;
      const page = await this.events.listAfter(this.position, PAGE);
      for (const event of page) {
        if (this.position === null || event.seq <= this.position) continue;
        this.position = event.seq;
        this.hub.publish(event);
      }
      if (page.length < PAGE) return;
    }
  }

  /** Ends the feed (Brain shutdown). */
  close(): void {
    this.stop();
  }
}
