import type { Role, User } from "../domain/user.js";

/** A user with the hash of their password (only `findByUsername` returns it). */
export type UserWithPasswordHash = User & { passwordHash: string };

/** Users and their password hashes. Usernames are unique regardless of letter case. */
export interface UserRepository {
  /** Every user, ordered by username. Never includes password hashes. */
  list(): Promise<User[]>;
  /** How many users exist (first start creates an admin when none does). */
  count(): Promise<number>;
  /** One user, or null. */
  get(id: string): Promise<User | null>;
  /** The user with this username (any letter case) and their password hash, or null. */
  findByUsername(username: string): Promise<UserWithPasswordHash | null>;
  /** Stores a user. CONFLICT when the id or the username (any letter case) exists. */
  create(user: Omit<User, "createdAt">, passwordHash: string, at: Date): Promise<User>;
  /** Changes a user. NOT_FOUND when unknown; CONFLICT on a taken username. */
  update(
    id: string,
    changes: { username?: string; role?: Role; disabled?: boolean; passwordHash?: string },
  ): Promise<User>;
  /** Deletes a user with their tokens and sessions. NOT_FOUND when unknown. */
  delete(id: string): Promise<void>;
}
