/** A lease held by one Brain replica; `epoch` is the fencing token. */
export interface Lease {
  name: string;
  holder: string;
  epoch: number;
  expiresAt: Date;
}

/** Leases so that several Brains never run the same background loop at once. */
export interface LeaseRepository {
  /** Takes or renews a lease; null when someone else holds it and it has not expired. */
  acquire(name: string, holder: string, ttlMs: number, now: Date): Promise<Lease | null>;
  release(name: string, holder: string): Promise<void>;
  /** True if `holder` still holds `name` at `epoch` (a write guarded by a lease checks this). */
  holds(name: string, holder: string, epoch: number, now: Date): Promise<boolean>;
}
