/**
 * `reserve` inside one transaction: capacity is checked against the node as
 * read plus what the transaction already reserved on it, the node's row is
 * written once before the commit, and reads in the transaction see it.
 */
import { type NewNode, OrchestratorError } from "@orchestrator/core";
import type { RepositoryHarness } from "@orchestrator/core/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { mysqlHarness, mysqlSkipReason, sqliteFileHarness } from "./helpers.js";

const at = (seconds: number) => new Date(Date.UTC(2026, 2, 1) + seconds * 1000);
const small = (memoryMb: number) => ({ memoryMb, cpu: 0.1, diskMb: 1 });

function node(id: string): NewNode {
  return {
    id,
    name: id,
    labels: {},
    capacity: { memoryMb: 1000, cpu: 4, diskMb: 1000 },
    overcommit: 1,
    portRange: { from: 30000, to: 30010 },
    reservedPorts: [],
    runtimes: ["process"],
    agentVersion: "1",
  };
}

const databases: Array<[string, () => Promise<RepositoryHarness>, string | null]> = [
  ["SQLite", () => sqliteFileHarness(), null],
  ["MySQL", () => mysqlHarness(), mysqlSkipReason],
];

for (const [label, open, skip] of databases) {
  describe.skipIf(skip !== null)(`reservations in one transaction (${label})`, () => {
    let h: RepositoryHarness;
    beforeAll(async () => {
      h = await open();
      await h.repositories.init?.();
    });
    afterAll(() => h?.destroy());
    beforeEach(async () => {
      await h.reset();
      await h.repositories.nodes.create(node("n1"), "hash-1", at(0));
    });

    it("count what the transaction already reserved, and are seen by its reads", async () => {
      const { repositories } = h;
      const seen = await repositories.transaction(async (tx) => {
        await tx.nodes.reserve("n1", "a", small(400), [30000], at(1));
        await tx.nodes.reserve("n1", "b", small(400), [], at(1));
        // 800 of 1,000 taken in this transaction: 400 more does not fit.
        const refused = await tx.nodes.reserve("n1", "c", small(400), [30001], at(1)).then(
          () => null,
          (error: unknown) => error,
        );
        expect(OrchestratorError.hasCode(refused, "CONFLICT")).toBe(true);
        expect((refused as OrchestratorError).details).toMatchObject({
          reason: "capacity",
          free: { memoryMb: 200 },
        });
        // 200 still fit.
        await tx.nodes.reserve("n1", "d", small(200), [], at(1));
        return (await tx.nodes.get("n1"))?.allocated.memoryMb;
      });
      expect(seen).toBe(1000);
      expect((await repositories.nodes.get("n1"))?.allocated.memoryMb).toBe(1000);
      expect(await repositories.nodes.getReservation("c")).toBeNull();
      expect(
        (await repositories.nodes.listPortAllocations({ nodeId: "n1" })).map((p) => p.port),
      ).toEqual([30000]);
    });

    it("write nothing when the transaction rolls back", async () => {
      const { repositories } = h;
      await expect(
        repositories.transaction(async (tx) => {
          await tx.nodes.reserve("n1", "a", small(400), [30000], at(1));
          throw new Error("rolled back");
        }),
      ).rejects.toThrow("rolled back");
      expect((await repositories.nodes.get("n1"))?.allocated.memoryMb).toBe(0);
      expect(await repositories.nodes.getReservation("a")).toBeNull();
    });

    it("see a change of the node made in the same transaction (a drain)", async () => {
      const { repositories } = h;
      await expect(
        repositories.transaction(async (tx) => {
          await tx.nodes.reserve("n1", "a", small(400), [], at(1));
          // Writes the pending reservation first, then the status; the next reserve reads it.
          await tx.nodes.setStatus("n1", "DRAINING");
          await tx.nodes.reserve("n1", "b", small(100), [], at(1));
        }),
      ).rejects.toMatchObject({ code: "CONFLICT" });
      expect((await repositories.nodes.get("n1"))?.allocated.memoryMb).toBe(0);
    });
  });
}
