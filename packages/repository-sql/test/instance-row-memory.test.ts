/**
 * An update whose version check passed builds the new row from the committed
 * row it was read at (no read-back): what it returns must be exactly what a
 * read returns, including after the id was deleted and used again.
 */
import type { NewInstance } from "@orchestrator/core";
import type { RepositoryHarness } from "@orchestrator/core/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { mysqlHarness, mysqlSkipReason, sqliteFileHarness } from "./helpers.js";

const at = (seconds: number) => new Date(Date.UTC(2026, 2, 1) + seconds * 1000);

function instance(id: string, name: string, memoryMb: number): NewInstance {
  return {
    id,
    name,
    templateName: "hello",
    templateVersion: 1,
    desiredState: "running",
    state: "REQUESTED",
    nodeId: null,
    epoch: 0,
    ports: {},
    resources: { memoryMb, cpu: 0.5, diskMb: 10 },
    variables: { GREETING: "hi" },
    owner: null,
  };
}

const databases: Array<[string, () => Promise<RepositoryHarness>, string | null]> = [
  ["SQLite", () => sqliteFileHarness(), null],
  ["MySQL", () => mysqlHarness(), mysqlSkipReason],
];

for (const [label, open, skip] of databases) {
  describe.skipIf(skip !== null)(`instance updates after a read (${label})`, () => {
    let h: RepositoryHarness;
    beforeAll(async () => {
      h = await open();
      await h.repositories.init?.();
    });
    afterAll(() => h?.destroy());
    beforeEach(async () => {
      await h.reset();
      await h.repositories.templates.addVersion(
        {
          name: "hello",
          layers: ["hello"],
          variables: {},
          runtime: { process: { command: ["true"] } },
          ports: [],
          resources: { memoryMb: 64, cpu: 0.5, diskMb: 10 },
          readiness: { log: "ready", timeoutSeconds: 30 },
          stop: { input: null, signal: "SIGTERM", timeoutSeconds: 10 },
          restart: { policy: "never", maxRestarts: 0, windowSeconds: 60 },
        },
        "sha256:hello",
        at(0),
      );
    });

    it("return what a read returns", async () => {
      const { instances } = h.repositories;
      await instances.create(instance("inst-a", "a", 64), at(1));
      const [listed] = (await instances.list({ state: "REQUESTED" })).items;
      const updated = await h.repositories.transaction((tx) =>
        tx.instances.update(
          "inst-a",
          { state: "REQUESTED", version: listed!.version },
          { state: "SCHEDULED", nodeId: null, epoch: 1, ports: { game: 30000 } },
          at(2),
        ),
      );
      expect(updated).toEqual(await instances.get("inst-a"));
      expect(updated).toMatchObject({ state: "SCHEDULED", epoch: 1, version: listed!.version + 1 });
      // Chained, from the row the first update returned (not remembered: computed).
      const again = await instances.update(
        "inst-a",
        { state: "SCHEDULED", version: updated.version },
        { desiredState: "stopped" },
        at(3),
      );
      expect(again).toEqual(await instances.get("inst-a"));
    });

    it("never return a row of an earlier instance with the same id", async () => {
      const { instances } = h.repositories;
      await instances.create(instance("inst-b", "first", 64), at(1));
      await instances.list();
      await instances.update("inst-b", { state: "REQUESTED" }, { state: "DESTROYED" }, at(2));
      await instances.delete("inst-b");
      await instances.create(instance("inst-b", "second", 128), at(3));
      const updated = await instances.update(
        "inst-b",
        { state: "REQUESTED", version: 1 },
        { desiredState: "stopped" },
        at(4),
      );
      expect(updated.name).toBe("second");
      expect(updated.resources.memoryMb).toBe(128);
      expect(updated).toEqual(await instances.get("inst-b"));
    });
  });
}
