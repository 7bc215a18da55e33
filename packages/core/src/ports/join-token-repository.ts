/** A one-time token a node presents to join; only a hash of its secret is stored. */
export interface JoinToken {
  id: string;
  /** The user who created it. */
  createdBy: string | null;
  createdAt: Date;
  expiresAt: Date;
  /** When it was used, or null while unused. */
  usedAt: Date | null;
  /** The node that joined with it. */
  nodeId: string | null;
}

/** One-time node join tokens, stored hashed. */
export interface JoinTokenRepository {
  /** Stores an unused token. CONFLICT when the id or the hash exists. */
  create(token: Omit<JoinToken, "usedAt" | "nodeId">, secretHash: string): Promise<JoinToken>;
  /**
   * Uses the token, atomically: exactly one of concurrent callers gets it;
   * null when unknown, already used or expired at `now`.
   */
  consume(secretHash: string, now: Date, nodeId: string): Promise<JoinToken | null>;
  /** Every token, newest first. Never includes hashes. */
  list(): Promise<JoinToken[]>;
  /** Deletes a token. NOT_FOUND when unknown. */
  delete(id: string): Promise<void>;
}
