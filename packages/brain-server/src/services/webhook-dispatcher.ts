/**
 * Webhooks for the events operators page on: instance FAILED or LOST, node
 * OFFLINE or ONLINE, and alerts that are not lifecycle transitions (two agent
 * processes using one node's credential: `node.identity_conflict`). Each delivery is a JSON POST signed with HMAC-SHA256 of the
 * body (`X-Orchestrator-Signature: sha256=<hex>`), with an id receivers can
 * deduplicate by, retried with jittered backoff. Deliveries are kept in memory:
 * a Brain restart drops the ones still retrying (the event log keeps the facts).
 */
import { createHmac } from "node:crypto";
import type { LoggedEvent } from "@orchestrator/core";
import type { FastifyBaseLogger } from "fastify";
import type { WebhookConfig } from "../config/brain-config.js";

export const WEBHOOK_EVENTS = [
  "instance.failed",
  "instance.lost",
  "node.offline",
  "node.online",
  "node.identity_conflict",
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

export function webhookEventOf(event: LoggedEvent): WebhookEvent | null {
  if (event.kind === "instance" && event.to === "FAILED" && event.from !== "FAILED")
    return "instance.failed";
  if (event.kind === "instance" && event.to === "LOST") return "instance.lost";
  if (event.kind === "node" && event.to === "OFFLINE" && event.from !== "OFFLINE")
    return "node.offline";
  if (event.kind === "node" && event.from === "OFFLINE" && event.to !== "OFFLINE")
    return "node.online";
  return null;
}

export function signWebhook(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

export class WebhookDispatcher {
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(
    private readonly hooks: readonly WebhookConfig[],
    private readonly log: FastifyBaseLogger,
    private readonly fetchImpl: typeof fetch = globalThis.fetch,
    private readonly maxAttempts = 5,
  ) {}

  /** Sends `event` to every hook that wants it (returns at once; delivery is in the background). */
  handle(event: LoggedEvent): void {
    const type = webhookEventOf(event);
    if (!type || this.closed) return;
    const body = JSON.stringify({ id: `evt_${event.seq}`, type, event });
    for (const hook of this.hooks) {
      if (hook.events.length > 0 && !hook.events.includes(type)) continue;
      void this.deliver(hook, body, 1);
    }
  }

  /**
   * Sends an alert that is not a logged lifecycle event. `id` is stable per
   * occurrence so receivers can deduplicate retried deliveries.
   */
  alert(type: WebhookEvent, id: string, payload: Record<string, unknown>): void {
    if (this.closed) return;
    const body = JSON.stringify({ id, type, alert: payload });
    for (const hook of this.hooks) {
      if (hook.events.length > 0 && !hook.events.includes(type)) continue;
      void this.deliver(hook, body, 1);
    }
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private async deliver(hook: WebhookConfig, body: string, attempt: number): Promise<void> {
    try {
      const response = await this.fetchImpl(hook.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-orchestrator-signature": signWebhook(hook.secret, body),
          "user-agent": "orchestrator-brain",
        },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      if (response.ok) return;
      throw new Error(`answered ${response.status}`);
    } catch (error) {
      if (attempt >= this.maxAttempts || this.closed) {
        this.log.warn({ url: hook.url, err: error }, "webhook delivery gave up");
        return;
      }
      const delay = Math.random() * Math.min(60_000, 1000 * 2 ** attempt);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void this.deliver(hook, body, attempt + 1);
      }, delay);
      timer.unref();
      this.timers.add(timer);
    }
  }
}
