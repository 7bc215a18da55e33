/**
 * One agent process per node credential. Every agent process sends a random
 * session id on each sync; the first session to sync holds the node, and a
 * sync from another session is refused while the holder is alive (a copied
 * state dir or credential: two processes would execute the same commands and
 * fight over the same servers). The holder is alive while one of its syncs is
 * in flight (a parked long-poll counts) or its last sync ended less than
 * `silenceMs` ago, on the Brain's monotonic clock.
 *
 * Memory only, on purpose: a heartbeat that changes nothing writes nothing.
 * A restarted Brain has no holder yet, so the first session to sync takes the
 * node and a duplicate is refused from its next sync on. Each Brain replica
 * keeps its own table: two processes syncing through different replicas are
 * detected only where both arrive.
 */
import type { Clock } from "@orchestrator/core";

interface Holder {
  sessionId: string;
  /** Syncs of the holder being handled now. */
  inFlight: number;
  /** Monotonic ms when the holder's last sync ended (or began, while in flight). */
  lastSeen: number;
}

/**
 * How long a holder must be silent before another session may take the node:
 * two heartbeats (a parked sync lasts up to one, and an idle agent pauses up
 * to a second between syncs) plus 2 s for a loaded host or network. A
 * restarted agent (kill -9, then started again) waits this long once.
 */
export function agentSessionWindowMs(config: { heartbeatIntervalMs: number }): number {
  return 2 * config.heartbeatIntervalMs + 2_000;
}

export type SessionVerdict =
  | { accepted: true; takeover: { previous: string; silentMs: number } | null }
  | { accepted: false; holder: string; retryAfterMs: number };

export class AgentSessions {
  private readonly holders = new Map<string, Holder>();

  constructor(
    private readonly clock: Clock,
    /** How long a holder must be silent before another session may take the node. */
    private readonly silenceMs: number,
  ) {}

  /**
   * Admits a sync of `sessionId` for `nodeId`. Accepted syncs must be paired
   * with `end()` once answered (or abandoned).
   */
  begin(nodeId: string, sessionId: string): SessionVerdict {
    const now = this.clock.monotonicMs();
    const holder = this.holders.get(nodeId);
    if (!holder || holder.sessionId === sessionId) {
      if (holder) {
        holder.inFlight += 1;
        holder.lastSeen = now;
      } else {
        this.holders.set(nodeId, { sessionId, inFlight: 1, lastSeen: now });
      }
      return { accepted: true, takeover: null };
    }
    const silentMs = holder.inFlight > 0 ? 0 : now - holder.lastSeen;
    if (silentMs < this.silenceMs) {
      return {
        accepted: false,
        holder: holder.sessionId,
        retryAfterMs: Math.max(1, this.silenceMs - silentMs),
      };
    }
    this.holders.set(nodeId, { sessionId, inFlight: 1, lastSeen: now });
    return { accepted: true, takeover: { previous: holder.sessionId, silentMs } };
  }

  /** The accepted sync of `sessionId` was answered (or the agent hung up). */
  end(nodeId: string, sessionId: string): void {
    const holder = this.holders.get(nodeId);
    if (!holder || holder.sessionId !== sessionId) return;
    holder.inFlight = Math.max(0, holder.inFlight - 1);
    holder.lastSeen = this.clock.monotonicMs();
  }

  /** The holder shut down cleanly: the node is free for the next session at once. */
  release(nodeId: string, sessionId: string): void {
    if (this.holders.get(nodeId)?.sessionId === sessionId) this.holders.delete(nodeId);
  }

  /** The node was removed. */
  forget(nodeId: string): void {
    this.holders.delete(nodeId);
  }

  holderOf(nodeId: string): string | null {
    return this.holders.get(nodeId)?.sessionId ?? null;
  }
}
