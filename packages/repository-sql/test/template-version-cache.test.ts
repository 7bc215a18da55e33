/**
 * `getVersion` parses a version's definition once and then only reads the
 * version's small columns: what it returns must still follow every change.
 */
import type { TemplateDefinition } from "@orchestrator/core";
import type { RepositoryHarness } from "@orchestrator/core/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { sqliteFileHarness } from "./helpers.js";

function definition(name: string, memoryMb: number): TemplateDefinition {
  return {
    name,
    layers: [name],
    variables: {},
    runtime: { process: { command: ["node", "server.js"] } },
    ports: [],
    resources: { memoryMb, cpu: 0.5, diskMb: 100 },
    readiness: { log: "ready", timeoutSeconds: 30 },
    stop: { input: null, signal: "SIGTERM", timeoutSeconds: 10 },
    restart: { policy: "never", maxRestarts: 0, windowSeconds: 60 },
  };
}

let h: RepositoryHarness;
beforeAll(async () => {
  h = await sqliteFileHarness();
  await h.repositories.init?.();
});
afterAll(() => h.destroy());
beforeEach(() => h.reset());

describe("template versions read for instance creation", () => {
  it("follow a new version, a deletion and a re-push with other content at once", async () => {
    const { templates } = h.repositories;
    await templates.addVersion(definition("cached", 64), "sha256:one", new Date(1_000));
    const first = await templates.getVersion("cached");
    expect(first?.definition.resources.memoryMb).toBe(64);
    // The same row again: the same parsed object, frozen so no caller can change it.
    expect(await templates.getVersion("cached")).toBe(first);
    expect(await templates.getVersion("cached", 1)).toBe(first);
    expect(Object.isFrozen(first?.definition.resources)).toBe(true);

    await templates.addVersion(definition("cached", 128), "sha256:two", new Date(2_000));
    expect((await templates.getVersion("cached"))?.definition.resources.memoryMb).toBe(128);
    expect((await templates.getVersion("cached", 1))?.definition.resources.memoryMb).toBe(64);

    await templates.delete("cached");
    expect(await templates.getVersion("cached")).toBeNull();
    expect(await templates.getVersion("cached", 1)).toBeNull();

    // Pushed again: version 1 exists again, with other content.
    await templates.addVersion(definition("cached", 256), "sha256:three", new Date(3_000));
    expect((await templates.getVersion("cached", 1))?.definition.resources.memoryMb).toBe(256);
    expect((await templates.getVersion("cached"))?.definition.resources.memoryMb).toBe(256);
  });

  it("inside a transaction, a version added by it is seen by the instance check", async () => {
    const { repositories } = h;
    await repositories.transaction(async (tx) => {
      await tx.templates.addVersion(definition("fresh", 64), "sha256:a", new Date(1_000));
      await tx.instances.create(
        {
          id: "inst-1",
          name: "one",
          templateName: "fresh",
          templateVersion: 1,
          desiredState: "running",
          state: "REQUESTED",
          nodeId: null,
          epoch: 0,
          ports: {},
          resources: { memoryMb: 64, cpu: 0.5, diskMb: 100 },
          variables: {},
          owner: null,
        },
        new Date(1_000),
      );
      await tx.templates.addVersion(definition("fresh", 128), "sha256:b", new Date(2_000));
      // Version 2 was added in this transaction after the first check: it must be seen.
      await tx.instances.create(
        {
          id: "inst-2",
          name: "two",
          templateName: "fresh",
          templateVersion: 2,
          desiredState: "running",
          state: "REQUESTED",
          nodeId: null,
          epoch: 0,
          ports: {},
          resources: { memoryMb: 128, cpu: 0.5, diskMb: 100 },
          variables: {},
          owner: null,
        },
        new Date(2_000),
      );
    });
    expect((await repositories.instances.get("inst-2"))?.templateVersion).toBe(2);
  });
});
