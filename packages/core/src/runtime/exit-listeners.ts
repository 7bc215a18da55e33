import type { RuntimeExit } from "../ports/runtime.js";

/**
 * The listener set behind `Runtime.onExit`, for runtime authors: subscribe
 * with an optional AbortSignal, emit to everyone; a throwing listener never
 * stops the others (its error goes to `onListenerError`).
 */
export class ExitListeners {
  private readonly listeners = new Set<(exit: RuntimeExit) => void>();

  constructor(
    private readonly onListenerError: (error: unknown) => void = (error) => {
      queueMicrotask(() => {
        throw error;
      });
    },
  ) {}

  /** Adds a listener; returns the function that removes it (also called when `signal` aborts). */
  add(listener: (exit: RuntimeExit) => void, signal?: AbortSignal): () => void {
    if (signal?.aborted) return () => {};
    const remove = () => {
      this.listeners.delete(listener);
      signal?.removeEventListener("abort", remove);
    };
    this.listeners.add(listener);
    signal?.addEventListener("abort", remove, { once: true });
    return remove;
  }

  /** Calls every listener with `exit`. */
  emit(exit: RuntimeExit): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(exit);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }

  /** Number of listeners (for tests and leak checks). */
  get size(): number {
    return this.listeners.size;
  }

  /** Removes every listener. */
  clear(): void {
    this.listeners.clear();
  }
}
