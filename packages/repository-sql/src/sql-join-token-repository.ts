/** One-time node join tokens; consuming one is a single conditional UPDATE (exactly one winner). */
import { type JoinToken, type JoinTokenRepository, NotFoundError } from "@orchestrator/core";
import {
  checkDate,
  checkNullableString,
  checkString,
  MAX_HASH,
  MAX_ID,
  toDate,
  toDateOrNull,
} from "./codec.js";
import type { JoinTokensTable } from "./schema.js";
import type { SqlScope } from "./sql-executor.js";
import { affected } from "./sql-helpers.js";

const JOIN_TOKEN_COLUMNS = [
  "id",
  "created_by",
  "created_at",
  "expires_at",
  "used_at",
  "node_id",
] as const;

function toJoinToken(row: Omit<JoinTokensTable, "secret_hash">): JoinToken {
  return {
    id: row.id,
    createdBy: row.created_by,
    createdAt: toDate(row.created_at),
    expiresAt: toDate(row.expires_at),
    usedAt: toDateOrNull(row.used_at),
    nodeId: row.node_id,
  };
}

export class SqlJoinTokenRepository implements JoinTokenRepository {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  async create(
    token: Omit<JoinToken, "usedAt" | "nodeId">,
    secretHash: string,
  ): Promise<JoinToken> {
    const row: JoinTokensTable = {
      id: checkString("id", token.id, MAX_ID),
      secret_hash: checkString("secretHash", secretHash, MAX_HASH),
      created_by: checkNullableString("createdBy", token.createdBy, MAX_ID),
      created_at: checkDate("createdAt", token.createdAt),
      expires_at: checkDate("expiresAt", token.expiresAt),
      used_at: null,
      node_id: null,
    };
    await this.#scope.write((db) => db.insertInto("orch_join_tokens").values(row).execute());
    const { secret_hash: _, ...rest } = row;
    return toJoinToken(rest);
  }

  async consume(secretHash: string, now: Date, nodeId: string): Promise<JoinToken | null> {
    const hash = checkString("secretHash", secretHash, MAX_HASH);
    const at = checkDate("now", now);
    const node = checkString("nodeId", nodeId, MAX_ID);
    const result = await this.#scope.write((db) =>
      db
        .updateTable("orch_join_tokens")
        .set({ used_at: at, node_id: node })
        .where("secret_hash", "=", hash)
        .where("used_at", "is", null)
        .where("expires_at", ">", at)
        .executeTakeFirst(),
    );
    if (affected(result) === 0) return null;
    const row = await this.#scope.read((db) =>
      db
        .selectFrom("orch_join_tokens")
        .select(JOIN_TOKEN_COLUMNS)
        .where("secret_hash", "=", hash)
        .executeTakeFirst(),
    );
    return row ? toJoinToken(row) : null;
  }

  async list(): Promise<JoinToken[]> {
    const rows = await this.#scope.read((db) =>
      db
        .selectFrom("orch_join_tokens")
        .select(JOIN_TOKEN_COLUMNS)
        .orderBy("created_at", "desc")
        .orderBy("id", "desc")
        .execute(),
    );
    return rows.map(toJoinToken);
  }

  async delete(id: string): Promise<void> {
    const result = await this.#scope.write((db) =>
      db.deleteFrom("orch_join_tokens").where("id", "=", id).executeTakeFirst(),
    );
    if (affected(result) === 0) throw new NotFoundError("join token", id);
  }
}
