/** Panel sessions; only hashes of their secrets are stored. */
import type { Session, SessionRepository, User } from "@orchestrator/core";
import { checkDate, checkNullableString, checkString, MAX_HASH, MAX_ID, toDate } from "./codec.js";
import type { SessionsTable } from "./schema.js";
import type { SqlScope } from "./sql-executor.js";
import { affected } from "./sql-helpers.js";
import { toUser } from "./sql-user-repository.js";

type SessionRow = Omit<SessionsTable, "secret_hash">;

const SESSION_COLUMNS = [
  "id",
  "user_id",
  "created_at",
  "expires_at",
  "last_seen_at",
  "ip",
  "user_agent",
] as const;

function toSession(row: SessionRow): Session {
  return {
    id: row.id,
    userId: row.user_id,
    createdAt: toDate(row.created_at),
    expiresAt: toDate(row.expires_at),
    lastSeenAt: toDate(row.last_seen_at),
    ip: row.ip,
    userAgent: row.user_agent,
  };
}

export class SqlSessionRepository implements SessionRepository {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  async create(session: Omit<Session, "lastSeenAt">, secretHash: string): Promise<Session> {
    const createdAt = checkDate("createdAt", session.createdAt);
    const row: SessionsTable = {
      id: checkString("id", session.id, MAX_ID),
      user_id: checkString("userId", session.userId, MAX_ID),
      secret_hash: checkString("secretHash", secretHash, MAX_HASH),
      created_at: createdAt,
      expires_at: checkDate("expiresAt", session.expiresAt),
      last_seen_at: createdAt,
      ip: checkNullableString("ip", session.ip, 64),
      // User agents are free text from the client: kept short.
      user_agent:
        session.userAgent === null || session.userAgent === undefined
          ? null
          : String(session.userAgent).slice(0, 512),
    };
    await this.#scope.write((db) => db.insertInto("orch_sessions").values(row).execute());
    const { secret_hash: _, ...rest } = row;
    return toSession(rest);
  }

  async findBySecretHash(
    secretHash: string,
    now: Date,
  ): Promise<{ session: Session; user: User } | null> {
    const hash = checkString("secretHash", secretHash, MAX_HASH);
    const at = checkDate("now", now);
    const row = await this.#scope.read((db) =>
      db
        .selectFrom("orch_sessions as s")
        .innerJoin("orch_users as u", "u.id", "s.user_id")
        .select([
          "s.id",
          "s.user_id",
          "s.created_at",
          "s.expires_at",
          "s.last_seen_at",
          "s.ip",
          "s.user_agent",
          "u.username",
          "u.role",
          "u.disabled",
          "u.created_at as user_created_at",
        ])
        .where("s.secret_hash", "=", hash)
        .where("s.expires_at", ">", at)
        .executeTakeFirst(),
    );
    if (!row) return null;
    return {
      session: toSession(row),
      user: toUser({
        id: row.user_id,
        username: row.username,
        role: row.role,
        disabled: row.disabled,
        created_at: row.user_created_at,
      }),
    };
  }

  async touch(id: string, at: Date, expiresAt?: Date): Promise<void> {
    const set: Partial<SessionsTable> = { last_seen_at: checkDate("at", at) };
    if (expiresAt !== undefined) set.expires_at = checkDate("expiresAt", expiresAt);
    await this.#scope.write((db) =>
      db.updateTable("orch_sessions").set(set).where("id", "=", id).execute(),
    );
  }

  async listForUser(userId: string): Promise<Session[]> {
    const rows = await this.#scope.read((db) =>
      db
        .selectFrom("orch_sessions")
        .select(SESSION_COLUMNS)
        .where("user_id", "=", userId)
        .orderBy("created_at", "desc")
        .orderBy("id", "desc")
        .execute(),
    );
    return rows.map(toSession);
  }

  async delete(id: string): Promise<void> {
    await this.#scope.write((db) => db.deleteFrom("orch_sessions").where("id", "=", id).execute());
  }

  async deleteForUser(userId: string): Promise<number> {
    const result = await this.#scope.write((db) =>
      db.deleteFrom("orch_sessions").where("user_id", "=", userId).executeTakeFirst(),
    );
    return affected(result);
  }

  async deleteExpired(now: Date): Promise<number> {
    const at = checkDate("now", now);
    const result = await this.#scope.write((db) =>
      db.deleteFrom("orch_sessions").where("expires_at", "<=", at).executeTakeFirst(),
    );
    return affected(result);
  }
}
