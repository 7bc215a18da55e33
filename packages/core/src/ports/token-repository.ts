import type { ApiToken, User } from "../domain/user.js";

/** API tokens; only a hash of the secret is stored (the secret is shown once). */
export interface TokenRepository {
  /** Stores a token. CONFLICT when the id or the hash exists. */
  create(token: Omit<ApiToken, "lastUsedAt">, secretHash: string): Promise<ApiToken>;
  /**
   * The token whose secret hashes to `secretHash` with its user, or null when
   * unknown or expired at `now`. (The caller still refuses disabled users.)
   */
  findBySecretHash(secretHash: string, now: Date): Promise<{ token: ApiToken; user: User } | null>;
  /** One token, or null. */
  get(id: string): Promise<ApiToken | null>;
  /** A user's tokens, oldest first. Never includes hashes. */
  listForUser(userId: string): Promise<ApiToken[]>;
  /** Records a use. */
  touch(id: string, at: Date): Promise<void>;
  /** Deletes a token. NOT_FOUND when unknown. */
  delete(id: string): Promise<void>;
}
