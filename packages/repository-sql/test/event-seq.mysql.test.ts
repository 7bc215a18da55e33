/**
 * MySQL event seqs in a transaction: the first comes from the counter row
 * (locking it), the following ones are handed out in memory and the counter
 * is written once before the commit. Seen from outside, nothing changes:
 * consecutive seqs, the counter at the last one, nothing after a rollback.
 */
import type { RepositoryHarness } from "@orchestrator/core/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { mysqlHarness, mysqlSkipReason } from "./helpers.js";

const SYSTEM = { kind: "system", id: "test" } as const;
const event = (instanceId: string, at: number) => ({
  instanceId,
  from: "REQUESTED" as const,
  to: "SCHEDULED" as const,
  at: new Date(at),
  reason: "test",
  actor: SYSTEM,
});

describe.skipIf(mysqlSkipReason !== null)(
  `event seqs in one MySQL transaction${mysqlSkipReason ? ` (skipped: ${mysqlSkipReason})` : ""}`,
  () => {
    let h: RepositoryHarness;
    beforeAll(async () => {
      h = await mysqlHarness();
      await h.repositories.init?.();
    });
    afterAll(() => h?.destroy());
    beforeEach(() => h.reset());

    it("are consecutive, and the counter ends at the last one", async () => {
      const { repositories } = h;
      const before = await repositories.events.lastSeq();
      const appended = await repositories.transaction(async (tx) => {
        const seqs: number[] = [];
        for (let i = 0; i < 5; i += 1) seqs.push((await tx.events.append(event(`i${i}`, i))).seq);
        // Inside, the last seq is the last one this transaction handed out.
        expect(await tx.events.lastSeq()).toBe(seqs.at(-1));
        return seqs;
      });
      expect(appended).toEqual([1, 2, 3, 4, 5].map((n) => before + n));
      expect(await repositories.events.lastSeq()).toBe(before + 5);
      const next = await repositories.events.append(event("after", 10));
      expect(next.seq).toBe(before + 6);
      const listed = await repositories.events.listAfter(before, 10);
      expect(listed.map((logged) => logged.seq)).toEqual([1, 2, 3, 4, 5, 6].map((n) => before + n));
    });

    it("are read back inside the transaction that appended them", async () => {
      const { repositories } = h;
      const seen = await repositories.transaction(async (tx) => {
        await tx.events.append(event("mine", 1));
        await tx.events.append(event("mine", 2));
        return (await tx.events.listForInstance("mine")).map((logged) => logged.at.getTime());
      });
      expect(seen).toEqual([1, 2]);
      expect(await repositories.events.listForInstance("mine")).toHaveLength(2);
    });

    it("leave nothing behind when the transaction rolls back", async () => {
      const { repositories } = h;
      const before = await repositories.events.lastSeq();
      await expect(
        repositories.transaction(async (tx) => {
          await tx.events.append(event("a", 1));
          await tx.events.append(event("b", 2));
          throw new Error("rolled back");
        }),
      ).rejects.toThrow("rolled back");
      expect(await repositories.events.lastSeq()).toBe(before);
      expect((await repositories.events.append(event("c", 3))).seq).toBe(before + 1);
    });

    it("serialise concurrent transactions in commit order", async () => {
      const { repositories } = h;
      const before = await repositories.events.lastSeq();
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, t) =>
          repositories.transaction(async (tx) => {
            const seqs: number[] = [];
            for (let i = 0; i < 3; i += 1)
              seqs.push((await tx.events.append(event(`t${t}-${i}`, i))).seq);
            return seqs;
          }),
        ),
      );
      // Each transaction's seqs are a run of three; together they are 1..18.
      for (const seqs of results) expect(seqs).toEqual([seqs[0]!, seqs[0]! + 1, seqs[0]! + 2]);
      expect(results.flat().sort((a, b) => a - b)).toEqual(
        Array.from({ length: 18 }, (_, i) => before + i + 1),
      );
      expect(await repositories.events.lastSeq()).toBe(before + 18);
    });
  },
);
