/**
 * Node liveness in memory, on the Brain's monotonic clock (DESIGN §5). A
 * heartbeat only updates memory; the database is written on transitions. After
 * the Brain starts it waits one full window before declaring anything offline,
 * and if most nodes go silent at once it suspects itself (its network, its
 * event loop) and marks nobody.
 */
import type { Clock } from "@orchestrator/core";

export interface LivenessOptions {
  offlineAfterMs: number;
  /** Above this fraction of silent nodes the Brain suspects itself. */
  massSilenceFraction: number;
  /** Mass-silence protection applies from this many tracked nodes on (one silent node of two is no evidence). */
  massSilenceMinNodes: number;
}

export interface LivenessSweep {
  /** Nodes silent for longer than the timeout, newly offline. */
  offline: string[];
  /** True while the Brain is in its startup grace window. */
  grace: boolean;
  /** True when too many nodes went silent at once: nobody was marked. */
  degraded: boolean;
}

export class LivenessMonitor {
  /** Start of the current grace window: the Brain's start, or the end of a stall of its own. */
  private graceFrom: number;
  private lastSweepAt: number | null = null;
  private readonly lastSeen = new Map<string, number>();
  private readonly offline = new Set<string>();
  /** Heartbeats received since the last `takeHeard`. */
  private readonly heard = new Set<string>();

  constructor(
    private readonly clock: Clock,
    private readonly options: LivenessOptions,
  ) {
    this.graceFrom = clock.monotonicMs();
  }

  /**
   * Starts watching a node the database says is alive; it gets a full window
   * from now (a restarted Brain has not heard from anyone yet).
   */
  track(nodeId: string): void {
    if (!this.lastSeen.has(nodeId)) this.lastSeen.set(nodeId, this.clock.monotonicMs());
  }

  /** Watches a node already known to be offline (it comes back on its next heartbeat). */
  trackOffline(nodeId: string): void {
    this.track(nodeId);
    this.offline.add(nodeId);
  }

  /** Records a heartbeat. Returns true when the node was offline (a transition to persist). */
  seen(nodeId: string): boolean {
    this.heard.add(nodeId);
    return this.seenElsewhere(nodeId);
  }

  /**
   * Records a heartbeat another Brain received (relayed through the
   * database), timed when this Brain learnt of it: never earlier than it was.
   */
  seenElsewhere(nodeId: string): boolean {
    this.lastSeen.set(nodeId, this.clock.monotonicMs());
    return this.offline.delete(nodeId);
  }

  /** Nodes heard from since the last call (what a Brain without the liveness lease relays). */
  takeHeard(): string[] {
    const heard = [...this.heard];
    this.heard.clear();
    return heard;
  }

  /**
   * Every node gets a full window from now: after this Brain took the liveness
   * lease over, it has not heard the heartbeats that went to the previous holder.
   */
  restartGrace(): void {
    this.graceFrom = this.clock.monotonicMs();
  }

  /** The nodes being watched. */
  tracked(): string[] {
    return [...this.lastSeen.keys()];
  }

  forget(nodeId: string): void {
    this.lastSeen.delete(nodeId);
    this.offline.delete(nodeId);
    this.heard.delete(nodeId);
  }

  /** Milliseconds since the node's last heartbeat, or null when unknown. */
  silenceMs(nodeId: string): number | null {
    const at = this.lastSeen.get(nodeId);
    return at === undefined ? null : this.clock.monotonicMs() - at;
  }

  isOffline(nodeId: string): boolean {
    return this.offline.has(nodeId);
  }

  /** Decides which nodes are newly offline. Call it periodically. */
  sweep(): LivenessSweep {
    const now = this.clock.monotonicMs();
    const previousSweep = this.lastSweepAt;
    this.lastSweepAt = now;
    if (previousSweep !== null && now - previousSweep >= this.options.offlineAfterMs) {
      // The Brain itself did not run for a whole window (paused process,
      // suspended VM, stalled event loop): the silence it measured is its own,
      // and heartbeats waiting in its sockets are not even read yet. As after a
      // start, every node gets a full window from now.
      this.graceFrom = now;
    }
    if (now - this.graceFrom < this.options.offlineAfterMs) {
      return { offline: [], grace: true, degraded: false };
    }
    const alive = [...this.lastSeen.keys()].filter((id) => !this.offline.has(id));
    const silent = alive.filter(
      (id) => now - this.lastSeen.get(id)! >= this.options.offlineAfterMs,
    );
    if (
      alive.length >= this.options.massSilenceMinNodes &&
      silent.length / alive.length > this.options.massSilenceFraction
    ) {
      return { offline: [], grace: false, degraded: true };
    }
    for (const id of silent) this.offline.add(id);
    return { offline: silent, grace: false, degraded: false };
  }
}
