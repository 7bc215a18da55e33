/**
 * In-process fan-out of live events (lifecycle events, node changes, log lines)
 * to SSE streams and parked agent syncs. Durable history lives in the event
 * repository; the hub only carries what happens from now on.
 */

export type Unsubscribe = () => void;

export class EventHub<T> {
  private readonly listeners = new Set<(event: T) => void>();

  subscribe(listener: (event: T) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(event: T): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // One broken subscriber must not stop the others.
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
