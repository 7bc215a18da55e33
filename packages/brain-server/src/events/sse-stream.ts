/**
 * A Server-Sent Events response over fastify's raw socket: `id:` lines so
 * clients resume with `Last-Event-ID`, comment pings so proxies keep the
 * connection open, and a bounded buffer: a client that cannot keep up is
 * disconnected (it resumes from its last id) instead of growing memory.
 */
import type { FastifyReply, FastifyRequest } from "fastify";

export interface SseOptions {
  /** Interval of `: ping` comments. */
  pingMs?: number;
  /** Bytes buffered for a slow client before it is cut off. */
  maxBufferedBytes?: number;
  /** Reconnection delay suggested to the client. */
  retryMs?: number;
}

export class SseStream {
  private open = true;
  private readonly ping: NodeJS.Timeout;
  private readonly closeListeners: (() => void)[] = [];

  constructor(
    private readonly reply: FastifyReply,
    private readonly options: Required<SseOptions>,
  ) {
    const raw = reply.raw;
    raw.on("close", () => this.close());
    this.ping = setInterval(() => this.write(": ping\n\n"), options.pingMs);
    this.ping.unref();
  }

  static start(request: FastifyRequest, reply: FastifyReply, options: SseOptions = {}): SseStream {
    reply.hijack();
    reply.raw.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    const stream = new SseStream(reply, {
      pingMs: options.pingMs ?? 15_000,
      maxBufferedBytes: options.maxBufferedBytes ?? 4 * 1024 * 1024,
      retryMs: options.retryMs ?? 2_000,
    });
    stream.write(`retry: ${stream.options.retryMs}\n\n`);
    request.log.debug("sse stream opened");
    return stream;
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** Sends one event; `data` is JSON-encoded (one line, so no framing issue). */
  send(event: string, data: unknown, id?: string | number): void {
    const lines = [
      id === undefined ? null : `id: ${id}`,
      `event: ${event}`,
      `data: ${JSON.stringify(data)}`,
    ];
    this.write(`${lines.filter((line) => line !== null).join("\n")}\n\n`);
  }

  onClose(listener: () => void): void {
    if (!this.open) listener();
    else this.closeListeners.push(listener);
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    clearInterval(this.ping);
    this.reply.raw.end();
    for (const listener of this.closeListeners.splice(0)) listener();
  }

  private write(chunk: string): void {
    if (!this.open) return;
    if (this.reply.raw.writableLength > this.options.maxBufferedBytes) {
      this.close();
      return;
    }
    this.reply.raw.write(chunk);
  }
}
