/**
 * Wakes parked agent syncs: when a command is queued for a node, its parked
 * long-poll answers at once (dispatch latency in milliseconds). Local to this
 * Brain process; a sync parked on another replica picks the command up on its
 * periodic re-check.
 */
export class NodeSignals {
  private readonly waiters = new Map<string, Set<() => void>>();

  /** Resolves true when woken, false after `timeoutMs` or when `signal` aborts. */
  wait(nodeId: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      let set = this.waiters.get(nodeId);
      if (!set) {
        set = new Set();
        this.waiters.set(nodeId, set);
      }
      const waiters = set;
      const finish = (woken: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        waiters.delete(wake);
        if (waiters.size === 0 && this.waiters.get(nodeId) === waiters) this.waiters.delete(nodeId);
        resolve(woken);
      };
      const wake = () => finish(true);
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), timeoutMs);
      waiters.add(wake);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  wake(nodeId: string): void {
    for (const wake of [...(this.waiters.get(nodeId) ?? [])]) wake();
  }

  /** Wakes everyone (shutdown). */
  wakeAll(): void {
    for (const nodeId of [...this.waiters.keys()]) this.wake(nodeId);
  }

  get parked(): number {
    let count = 0;
    for (const set of this.waiters.values()) count += set.size;
    return count;
  }
}
