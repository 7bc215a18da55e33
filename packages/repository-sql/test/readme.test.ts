import { describe, expect, it } from "vitest";
import { migrateToLatest, migrationStatus, openDatabase, SqlRepositories } from "../src/index.js";

const now = new Date("2026-03-01T00:00:00.000Z");
const actor = { kind: "system", id: "docs" } as const;
const node = {
  id: "node-1",
  name: "node 1",
  labels: {},
  capacity: { memoryMb: 4096, cpu: 4, diskMb: 10_000 },
  overcommit: 1,
  portRange: { from: 30000, to: 30999 },
  reservedPorts: [],
  runtimes: ["process"],
  agentVersion: "1.0.0",
};
const credentialHash = "sha256:credential";
const instance = {
  id: "inst-1",
  name: "survival",
  templateName: "hello",
  templateVersion: 1,
  desiredState: "running" as const,
  state: "REQUESTED" as const,
  nodeId: null,
  epoch: 0,
  ports: {},
  resources: { memoryMb: 512, cpu: 0.5, diskMb: 100 },
  variables: {},
  owner: null,
};

describe("README examples", () => {
  it("usage runs as written", async () => {
    const repositories = SqlRepositories.fromUrl("sqlite::memory:");
    await repositories.init();
    await repositories.templates.addVersion(
      {
        name: "hello",
        layers: ["hello"],
        variables: {},
        runtime: { process: { command: ["node", "server.js"] } },
        ports: [{ name: "game", protocol: "tcp" }],
        resources: instance.resources,
        readiness: { timeoutSeconds: 30 },
        stop: { input: null, signal: "SIGTERM", timeoutSeconds: 10 },
        restart: { policy: "never", maxRestarts: 0, windowSeconds: 60 },
      },
      "sha256:hello",
      now,
    );

    await repositories.nodes.create(node, credentialHash, now);
    await repositories.instances.create(instance, now);
    await repositories.transaction(async (r) => {
      await r.nodes.reserve(node.id, instance.id, instance.resources, [30000], now);
      await r.instances.transition(instance.id, {
        expected: { state: "REQUESTED", version: 1 },
        trigger: "schedule",
        reason: `placed on ${node.id}`,
        actor,
        at: now,
        change: { nodeId: node.id, epoch: 1, ports: { game: 30000 } },
      });
      await r.commands.enqueue(
        {
          id: "cmd-1",
          nodeId: node.id,
          instanceId: instance.id,
          type: "prepare",
          payload: {},
          epoch: 1,
        },
        now,
      );
    });

    expect(await repositories.instances.get(instance.id)).toMatchObject({
      state: "SCHEDULED",
      nodeId: "node-1",
      ports: { game: 30000 },
    });
    expect((await repositories.nodes.get(node.id))?.allocated.memoryMb).toBe(512);
    expect((await repositories.commands.get("cmd-1"))?.status).toBe("pending");
    await repositories.destroy();
  });

  it("the migration CLI snippet runs as written", async () => {
    const { db } = openDatabase("sqlite::memory:");
    expect((await migrationStatus(db)).upToDate).toBe(false);
    expect((await migrateToLatest(db)).current).toBe((await migrationStatus(db)).latest);
    await db.destroy();
  });
});
