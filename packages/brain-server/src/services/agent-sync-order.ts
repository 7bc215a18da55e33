/**
 * The order of one agent session's syncs, from the numbers the agent puts on
 * them (`SyncRequest.syncNumber` / `received`). An agent has one sync in
 * flight at a time, but hangs up a parked one when it has news; a Brain that
 * stalled (SIGSTOP, a long pause, overload) reads such an abandoned request
 * late, possibly after the newer one. Two harms follow, both avoided here:
 *
 * * the abandoned sync's inventory is older than what the agent said since:
 *   acting on it fails instances the node holds ("no longer has this
 *   instance") — a sync older than one already taken up is `stale`;
 * * commands claimed for an answer nobody reads would wait for the outbox's
 *   redelivery (30 s) — the agent's `received` tells which answers it got, and
 *   the commands of the others are handed out again at once (the agent runs
 *   each command id at most once, so a repeat is harmless).
 *
 * Memory only, per node, bounded; a restarted Brain starts empty (the
 * outbox's redelivery still covers what is lost then).
 */
import type { AgentCommand } from "@orchestrator/core";

/** Answers with commands remembered per node until the agent confirms one newer. */
const MAX_REMEMBERED_ANSWERS = 16;

interface SessionOrder {
  sessionId: string;
  /** The newest sync number taken up. */
  newest: number;
  /** Commands handed out per answered sync number, oldest first. */
  given: Map<number, AgentCommand[]>;
}

export class AgentSyncOrder {
  private readonly nodes = new Map<string, SessionOrder>();

  /**
   * Takes up sync `syncNumber` of the session: false when a newer (or the
   * same) one was taken up already — this one was abandoned by the agent.
   * `received` 0 (no answer yet) is a new agent process — a restarted agent
   * may continue its predecessor's session — whose numbering starts again.
   */
  begin(nodeId: string, sessionId: string, syncNumber: number, received: number): boolean {
    let order = this.nodes.get(nodeId);
    if (!order || order.sessionId !== sessionId || received === 0) {
      order = { sessionId, newest: 0, given: new Map() };
      this.nodes.set(nodeId, order);
    }
    if (syncNumber <= order.newest) return false;
    order.newest = syncNumber;
    return true;
  }

  /**
   * Commands answered to syncs after `received` (the last answer the agent
   * got) and before `current`: they never arrived. Answers up to `received`
   * are forgotten (they arrived).
   */
  missed(nodeId: string, sessionId: string, received: number, current: number): AgentCommand[] {
    const order = this.nodes.get(nodeId);
    if (!order || order.sessionId !== sessionId) return [];
    const missed = new Map<string, AgentCommand>();
    for (const [number, commands] of order.given) {
      if (number <= received) order.given.delete(number);
      else if (number < current) for (const command of commands) missed.set(command.id, command);
    }
    return [...missed.values()];
  }

  /** Remembers the commands answered to sync `syncNumber` (until the agent confirms it got them). */
  gave(nodeId: string, sessionId: string, syncNumber: number, commands: AgentCommand[]): void {
    const order = this.nodes.get(nodeId);
    if (!order || order.sessionId !== sessionId || commands.length === 0) return;
    order.given.set(syncNumber, commands);
    while (order.given.size > MAX_REMEMBERED_ANSWERS) {
      const oldest = order.given.keys().next().value as number;
      order.given.delete(oldest);
    }
  }

  forget(nodeId: string): void {
    this.nodes.delete(nodeId);
  }
}
