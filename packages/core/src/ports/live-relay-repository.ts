/**
 * Live data between Brain replicas (DESIGN §5, §6). Log lines and stats
 * samples reach the Brain an agent syncs with, while the viewer may be
 * connected to another replica. Each replica declares what its viewers watch
 * (short-lived declarations it renews), and a replica that receives data
 * somebody else watches appends it here; the watching replica reads it back.
 * Items are short-lived too: pruned after a few seconds. A single Brain
 * writes nothing here unless its own viewers declare watches.
 */

/** What flows through the relay. */
export type LiveItemKind = "log" | "stats";

/** "This replica has viewers of this instance's `kind`." */
export interface LiveWatchEntry {
  instanceId: string;
  kind: LiveItemKind;
}

export interface LiveWatch extends LiveWatchEntry {
  /** The replica that declared it. */
  watcher: string;
}

export interface NewLiveItem {
  instanceId: string;
  kind: LiveItemKind;
  /** The replica that received it from the agent (its own viewers had it already). */
  origin: string;
  /** JSON-serialisable (a log line, a stats sample). */
  payload: unknown;
  at: Date;
}

export interface LiveItem extends NewLiveItem {
  /** Increasing in insertion order: readers resume after the last id they saw. */
  id: number;
}

export interface LiveRelayRepository {
  /** Declares (or renews) `watcher`'s viewers of these entries until `expiresAt`. */
  watch(watcher: string, entries: readonly LiveWatchEntry[], expiresAt: Date): Promise<void>;
  /** Withdraws `watcher`'s declarations: these entries, or all of them when absent. */
  unwatch(watcher: string, entries?: readonly LiveWatchEntry[]): Promise<void>;
  /** Declarations not expired at `now`, by instance then watcher. */
  listWatches(now: Date): Promise<LiveWatch[]>;
  /** Appends items (ids increase in the order given). */
  append(items: readonly NewLiveItem[]): Promise<void>;
  /**
   * Items after `afterId` of these instances, except those `exceptOrigin`
   * appended, oldest first, at most `limit`.
   */
  listItems(
    afterId: number,
    filter: { instanceIds: readonly string[]; exceptOrigin?: string },
    limit: number,
  ): Promise<LiveItem[]>;
  /** The highest item id so far (0 when empty). */
  lastItemId(): Promise<number>;
  /** Deletes items older than `before` and declarations expired at `before`; returns how many items went. */
  prune(before: Date): Promise<number>;
}
