/** Users. Usernames are unique regardless of letter case (a normalised key column). */
import {
  NotFoundError,
  ROLES,
  type Role,
  type User,
  type UserRepository,
  type UserWithPasswordHash,
} from "@orchestrator/core";
import {
  bool,
  checkDate,
  checkOneOf,
  checkString,
  MAX_ID,
  MAX_NAME,
  MAX_PASSWORD_HASH,
  num,
  toDate,
} from "./codec.js";
import type { UsersTable } from "./schema.js";
import type { SqlScope } from "./sql-executor.js";
import { affected } from "./sql-helpers.js";

const USER_COLUMNS = ["id", "username", "role", "disabled", "created_at"] as const;

/** The comparison key of a username: NFC, lower case. */
export function usernameKey(username: string): string {
  return username.normalize("NFC").toLowerCase();
}

export function toUser(row: Pick<UsersTable, (typeof USER_COLUMNS)[number]>): User {
  return {
    id: row.id,
    username: row.username,
    role: row.role as Role,
    disabled: bool(row.disabled),
    createdAt: toDate(row.created_at),
  };
}

export class SqlUserRepository implements UserRepository {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  async list(): Promise<User[]> {
    const rows = await this.#scope.read((db) =>
      db.selectFrom("orch_users").select(USER_COLUMNS).orderBy("username_key").execute(),
    );
    return rows.map(toUser);
  }

  async count(): Promise<number> {
    const row = await this.#scope.read((db) =>
      db
        .selectFrom("orch_users")
        .select((eb) => eb.fn.countAll().as("count"))
        .executeTakeFirstOrThrow(),
    );
    return num(row.count);
  }

  async get(id: string): Promise<User | null> {
    const row = await this.#scope.read((db) =>
      db.selectFrom("orch_users").select(USER_COLUMNS).where("id", "=", id).executeTakeFirst(),
    );
    return row ? toUser(row) : null;
  }

  async findByUsername(username: string): Promise<UserWithPasswordHash | null> {
    const key = usernameKey(checkString("username", username, MAX_NAME));
    const row = await this.#scope.read((db) =>
      db
        .selectFrom("orch_users")
        .select([...USER_COLUMNS, "password_hash"])
        .where("username_key", "=", key)
        .executeTakeFirst(),
    );
    return row ? { ...toUser(row), passwordHash: row.password_hash } : null;
  }

  async create(user: Omit<User, "createdAt">, passwordHash: string, at: Date): Promise<User> {
    const username = checkString("username", user.username, MAX_NAME);
    const row: UsersTable = {
      id: checkString("id", user.id, MAX_ID),
      username,
      username_key: usernameKey(username),
      role: checkOneOf("role", user.role, ROLES),
      disabled: user.disabled ? 1 : 0,
      password_hash: checkString("passwordHash", passwordHash, MAX_PASSWORD_HASH),
      created_at: checkDate("at", at),
    };
    await this.#scope.write((db) => db.insertInto("orch_users").values(row).execute());
    return toUser(row);
  }

  async update(
    id: string,
    changes: { username?: string; role?: Role; disabled?: boolean; passwordHash?: string },
  ): Promise<User> {
    const set: Partial<UsersTable> = {};
    if (changes.username !== undefined) {
      set.username = checkString("username", changes.username, MAX_NAME);
      set.username_key = usernameKey(set.username);
    }
    if (changes.role !== undefined) set.role = checkOneOf("role", changes.role, ROLES);
    if (changes.disabled !== undefined) set.disabled = changes.disabled ? 1 : 0;
    if (changes.passwordHash !== undefined) {
      set.password_hash = checkString("passwordHash", changes.passwordHash, MAX_PASSWORD_HASH);
    }
    if (Object.keys(set).length > 0) {
      const result = await this.#scope.write((db) =>
        db.updateTable("orch_users").set(set).where("id", "=", id).executeTakeFirst(),
      );
      if (affected(result) === 0) throw new NotFoundError("user", id);
    }
    const user = await this.get(id);
    if (!user) throw new NotFoundError("user", id);
    return user;
  }

  async delete(id: string): Promise<void> {
    await this.#scope.atomic(async (scope) => {
      // Explicit rather than relying on foreign keys being enforced (SQLite needs a pragma).
      await scope.write((db) =>
        db.deleteFrom("orch_api_tokens").where("user_id", "=", id).execute(),
      );
      await scope.write((db) => db.deleteFrom("orch_sessions").where("user_id", "=", id).execute());
      const result = await scope.write((db) =>
        db.deleteFrom("orch_users").where("id", "=", id).executeTakeFirst(),
      );
      if (affected(result) === 0) throw new NotFoundError("user", id);
    });
  }
}
