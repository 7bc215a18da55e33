/**
 * Lifecycle hooks shared by every pluggable component (runtimes, storages,
 * repositories). Both are optional; `guardPlugin` calls them at most once.
 */
export interface Plugin {
  /** Prepares the component (connects, creates directories). Called once before first use. */
  init?(options?: { signal?: AbortSignal }): Promise<void>;
  /** Releases everything the component holds. No method may be used afterwards. */
  destroy?(): Promise<void>;
}
