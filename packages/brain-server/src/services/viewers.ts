/**
 * Who watches which instance's live data (console lines, stats): this Brain's
 * own streams, counted, and the instances other replicas' viewers watch (kept
 * by `LiveRelay`). Agents are asked for the union.
 */
export interface ViewerHooks {
  /** The first local viewer of an instance arrived. */
  first?: (instanceId: string) => void;
  /** The last local viewer of an instance left. */
  last?: (instanceId: string) => void;
}

export class Viewers {
  private readonly counts = new Map<string, number>();
  private remote: ReadonlySet<string> = new Set();

  constructor(private readonly hooks: ViewerHooks = {}) {}

  /** Counts a local viewer until the returned function is called (once). */
  add(instanceId: string): () => void {
    const before = this.counts.get(instanceId) ?? 0;
    this.counts.set(instanceId, before + 1);
    if (before === 0) this.hooks.first?.(instanceId);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.counts.get(instanceId) ?? 1) - 1;
      if (left > 0) {
        this.counts.set(instanceId, left);
        return;
      }
      this.counts.delete(instanceId);
      this.hooks.last?.(instanceId);
    };
  }

  /** Instances this Brain's own viewers watch. */
  local(): string[] {
    return [...this.counts.keys()];
  }

  /** Instances watched here or on another replica. */
  all(): string[] {
    return [...new Set([...this.counts.keys(), ...this.remote])];
  }

  setRemote(instanceIds: ReadonlySet<string>): void {
    this.remote = instanceIds;
  }

  watchedLocally(instanceId: string): boolean {
    return this.counts.has(instanceId);
  }

  watchedRemotely(instanceId: string): boolean {
    return this.remote.has(instanceId);
  }
}
