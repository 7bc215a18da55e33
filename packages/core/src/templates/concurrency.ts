/**
 * Runs `work` over `items` with at most `concurrency` in flight. On the first
 * failure no new item starts; the ones in flight are awaited (so a caller
 * cleaning up afterwards never races a write still running), then the first
 * error is thrown.
 */
export async function forEachConcurrent<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const index = next;
      next += 1;
      try {
        signal?.throwIfAborted();
        await work(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker);
  await Promise.all(workers);
  if (failure) throw failure.error;
}

/**
 * Paces synchronous metadata calls (`lstatSync`, `mkdirSync`, ...): after every
 * `slice` calls, `due()` says to `pause()`: yield to the event loop (and check the abort
 * signal). On page-cached metadata a synchronous call costs a few µs while a
 * promise call costs several times that in thread-pool hand-offs and
 * allocations (measured: 10,000 `lstat`s in ~40 ms vs ~200 ms); slicing keeps
 * the event loop responsive. Copying, which waits on the disk, stays asynchronous.
 */
export class EventLoopSlicer {
  #count = 0;
  readonly #slice: number;
  readonly #signal: AbortSignal | undefined;

  constructor(signal?: AbortSignal, slice = 512) {
    this.#signal = signal;
    this.#slice = slice;
  }

  /**
   * Counts `calls`; true when a slice is complete and the caller should
   * `await pause()` (kept synchronous so hot loops pay no promise per call).
   */
  due(calls = 1): boolean {
    this.#count += calls;
    if (this.#count < this.#slice) return false;
    this.#count = 0;
    return true;
  }

  /** Yields to the event loop, then checks the abort signal. */
  async pause(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.#signal?.throwIfAborted();
  }
}
