import type { User } from "../domain/user.js";

/** A panel session (cookie); only a hash of its secret is stored. */
export interface Session {
  id: string;
  userId: string;
  createdAt: Date;
  expiresAt: Date;
  lastSeenAt: Date;
  /** Client address at login, for the audit log and the user's session list. */
  ip: string | null;
  userAgent: string | null;
}

/** Panel sessions, stored hashed. */
export interface SessionRepository {
  /** Stores a session (last seen = created). CONFLICT when the id or the hash exists. */
  create(session: Omit<Session, "lastSeenAt">, secretHash: string): Promise<Session>;
  /** The session whose secret hashes to `secretHash` with its user, or null when unknown or expired. */
  findBySecretHash(secretHash: string, now: Date): Promise<{ session: Session; user: User } | null>;
  /** Records activity and optionally slides the expiry. */
  touch(id: string, at: Date, expiresAt?: Date): Promise<void>;
  /** A user's sessions, newest first. */
  listForUser(userId: string): Promise<Session[]>;
  /** Ends one session (logout); ending a missing one is not an error. */
  delete(id: string): Promise<void>;
  /** Ends every session of a user (revocation); returns how many. */
  deleteForUser(userId: string): Promise<number>;
  /** Removes sessions expired at `now`; returns how many. */
  deleteExpired(now: Date): Promise<number>;
}
