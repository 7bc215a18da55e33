import type { ApiToken, Role, User } from "../domain/user.js";

/** Users and their password hashes. */
export interface UserRepository {
  list(): Promise<User[]>;
  get(id: string): Promise<User | null>;
  findByUsername(username: string): Promise<(User & { passwordHash: string }) | null>;
  create(user: Omit<User, "createdAt">, passwordHash: string, at: Date): Promise<User>;
  update(
    id: string,
    changes: { role?: Role; disabled?: boolean; passwordHash?: string },
  ): Promise<User>;
  delete(id: string): Promise<void>;
}

/** API tokens, stored hashed. */
export interface TokenRepository {
  create(token: Omit<ApiToken, "lastUsedAt">, secretHash: string): Promise<ApiToken>;
  findBySecretHash(secretHash: string): Promise<ApiToken | null>;
  listForUser(userId: string): Promise<ApiToken[]>;
  delete(id: string): Promise<void>;
  touch(id: string, at: Date): Promise<void>;
}
