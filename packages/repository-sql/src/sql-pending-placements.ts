/**
 * Placement notes (`InstanceRepository.get/setPendingPlacement`): one row per
 * unplaced instance, written only when the explanation changes, deleted with
 * the instance (foreign key, cascade).
 */
import type { PendingPlacementNote } from "@orchestrator/core";
import { checkDate, checkString, fromJson, invalid, toDate, toJson } from "./codec.js";
import type { SqlScope } from "./sql-executor.js";

const MAX_ID = 128;
/** Explanations are a few lines per filter; anything bigger is a bug upstream. */
const MAX_EXPLANATION_BYTES = 64 * 1024;

export async function getPendingPlacement(
  scope: SqlScope,
  id: string,
): Promise<PendingPlacementNote | null> {
  checkString("id", id, MAX_ID);
  const row = await scope.read((db) =>
    db
      .selectFrom("orch_pending_placements")
      .select(["at", "explanation"])
      .where("instance_id", "=", id)
      .executeTakeFirst(),
  );
  return row ? { at: toDate(row.at), explanation: fromJson(row.explanation, null) } : null;
}

export async function setPendingPlacement(
  scope: SqlScope,
  id: string,
  note: PendingPlacementNote | null,
): Promise<void> {
  checkString("id", id, MAX_ID);
  if (note === null) {
    await scope.write((db) =>
      db.deleteFrom("orch_pending_placements").where("instance_id", "=", id).execute(),
    );
    return;
  }
  const at = checkDate("note.at", note.at);
  const explanation = toJson(note.explanation);
  if (Buffer.byteLength(explanation) > MAX_EXPLANATION_BYTES) {
    throw invalid("note.explanation", `must be at most ${MAX_EXPLANATION_BYTES} bytes of JSON`);
  }
  await scope.atomic(async (tx) => {
    const exists = await tx.read((db) =>
      db.selectFrom("orch_instances").select("id").where("id", "=", id).executeTakeFirst(),
    );
    if (!exists) return; // unknown (or just deleted) instance: nothing to explain
    await tx.write((db) => {
      const insert = db
        .insertInto("orch_pending_placements")
        .values({ instance_id: id, at, explanation });
      return (
        tx.flavor.name === "mysql"
          ? insert.onDuplicateKeyUpdate({ at, explanation })
          : insert.onConflict((conflict) =>
              conflict.column("instance_id").doUpdateSet({ at, explanation }),
            )
      ).execute();
    });
  });
}
