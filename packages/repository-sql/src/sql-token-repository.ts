/** API tokens; only hashes of their secrets are stored, and listings never return them. */
import { type ApiToken, NotFoundError, type TokenRepository, type User } from "@orchestrator/core";
import {
  checkDate,
  checkString,
  fromJson,
  invalid,
  MAX_HASH,
  MAX_ID,
  MAX_NAME,
  toDate,
  toDateOrNull,
  toJson,
} from "./codec.js";
import type { ApiTokensTable } from "./schema.js";
import type { SqlScope } from "./sql-executor.js";
import { affected } from "./sql-helpers.js";
import { toUser } from "./sql-user-repository.js";

type TokenRow = Omit<ApiTokensTable, "secret_hash">;

const TOKEN_COLUMNS = [
  "id",
  "user_id",
  "name",
  "scopes",
  "created_at",
  "expires_at",
  "last_used_at",
] as const;

function toToken(row: TokenRow): ApiToken {
  return {
    id: row.id,
    userId: row.user_id,
    name: row.name,
    scopes: fromJson<string[]>(row.scopes, []),
    createdAt: toDate(row.created_at),
    expiresAt: toDateOrNull(row.expires_at),
    lastUsedAt: toDateOrNull(row.last_used_at),
  };
}

export class SqlTokenRepository implements TokenRepository {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  async create(token: Omit<ApiToken, "lastUsedAt">, secretHash: string): Promise<ApiToken> {
    if (!Array.isArray(token.scopes)) throw invalid("scopes", "must be an array");
    const row: ApiTokensTable = {
      id: checkString("id", token.id, MAX_ID),
      user_id: checkString("userId", token.userId, MAX_ID),
      name: checkString("name", token.name, MAX_NAME),
      scopes: toJson(
        token.scopes.map((scope, index) => checkString(`scopes[${index}]`, scope, 64)),
      ),
      secret_hash: checkString("secretHash", secretHash, MAX_HASH),
      created_at: checkDate("createdAt", token.createdAt),
      expires_at: token.expiresAt === null ? null : checkDate("expiresAt", token.expiresAt),
      last_used_at: null,
    };
    await this.#scope.write((db) => db.insertInto("orch_api_tokens").values(row).execute());
    const { secret_hash: _, ...rest } = row;
    return toToken(rest);
  }

  async findBySecretHash(
    secretHash: string,
    now: Date,
  ): Promise<{ token: ApiToken; user: User } | null> {
    const hash = checkString("secretHash", secretHash, MAX_HASH);
    const at = checkDate("now", now);
    const row = await this.#scope.read((db) =>
      db
        .selectFrom("orch_api_tokens as t")
        .innerJoin("orch_users as u", "u.id", "t.user_id")
        .select([
          "t.id",
          "t.user_id",
          "t.name",
          "t.scopes",
          "t.created_at",
          "t.expires_at",
          "t.last_used_at",
          "u.username",
          "u.role",
          "u.disabled",
          "u.created_at as user_created_at",
        ])
        .where("t.secret_hash", "=", hash)
        .where((eb) => eb.or([eb("t.expires_at", "is", null), eb("t.expires_at", ">", at)]))
        .executeTakeFirst(),
    );
    if (!row) return null;
    return {
      token: toToken(row),
      user: toUser({
        id: row.user_id,
        username: row.username,
        role: row.role,
        disabled: row.disabled,
        created_at: row.user_created_at,
      }),
    };
  }

  async get(id: string): Promise<ApiToken | null> {
    const row = await this.#scope.read((db) =>
      db
        .selectFrom("orch_api_tokens")
        .select(TOKEN_COLUMNS)
        .where("id", "=", id)
        .executeTakeFirst(),
    );
    return row ? toToken(row) : null;
  }

  async listForUser(userId: string): Promise<ApiToken[]> {
    const rows = await this.#scope.read((db) =>
      db
        .selectFrom("orch_api_tokens")
        .select(TOKEN_COLUMNS)
        .where("user_id", "=", userId)
        .orderBy("created_at")
        .orderBy("id")
        .execute(),
    );
    return rows.map(toToken);
  }

  async touch(id: string, at: Date): Promise<void> {
    const lastUsed = checkDate("at", at);
    await this.#scope.write((db) =>
      db
        .updateTable("orch_api_tokens")
        .set({ last_used_at: lastUsed })
        .where("id", "=", id)
        .execute(),
    );
  }

  async delete(id: string): Promise<void> {
    const result = await this.#scope.write((db) =>
      db.deleteFrom("orch_api_tokens").where("id", "=", id).executeTakeFirst(),
    );
    if (affected(result) === 0) throw new NotFoundError("token", id);
  }
}
