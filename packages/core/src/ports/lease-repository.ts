/** A lease held by one Brain replica; `epoch` is the fencing token. */
export interface Lease {
  name: string;
  holder: string;
  /** Increases every time the lease changes hands (or is retaken after expiring). */
  epoch: number;
  expiresAt: Date;
}

/** What a write guarded by a lease presents: the lease it believes it holds. */
export interface LeaseFence {
  name: string;
  holder: string;
  epoch: number;
  /** The holder's current time, compared with the lease's expiry. */
  now: Date;
}

/** Leases so that several Brains never run the same background loop at once. */
export interface LeaseRepository {
  /**
   * Takes a free or expired lease (new epoch) or renews one `holder` already
   * holds (same epoch, later expiry). Null when someone else holds it and it
   * has not expired. Exactly one of concurrent callers wins.
   */
  acquire(name: string, holder: string, ttlMs: number, now: Date): Promise<Lease | null>;
  /** Gives the lease up if `holder` holds it (the next holder gets a higher epoch); true if it did. */
  release(name: string, holder: string): Promise<boolean>;
  /** The lease's current record, or null when never taken. */
  get(name: string): Promise<Lease | null>;
  /** True if `fence.holder` still holds `fence.name` at `fence.epoch` and it has not expired. */
  holds(fence: LeaseFence): Promise<boolean>;
  /**
   * Like `holds` but throws CONFLICT (`details.reason: "lease-lost"`), and
   * inside a transaction keeps the lease from changing hands until it ends:
   * the write it guards cannot land after a takeover.
   */
  assertHeld(fence: LeaseFence): Promise<void>;
}
