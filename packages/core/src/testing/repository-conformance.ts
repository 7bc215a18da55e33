/**
 * THE conformance suite of the persistence port (`Repositories`). Every
 * adapter runs it with a factory; an adapter is done when it passes. It checks
 * behaviour only through the port: round trips, optimistic concurrency,
 * atomic reservations under concurrent placements, transactions, the event
 * log's ordering, the outbox's delivery rules, leases with fencing, and that
 * secrets never come back from listings.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Command } from "../domain/command.js";
import type { Actor } from "../domain/instance-event.js";
import type { TemplateDefinition } from "../domain/template.js";
import { type ErrorCode, OrchestratorError } from "../errors/orchestrator-error.js";
import type { NewInstance } from "../ports/instance-repository.js";
import type { NewNode } from "../ports/node-repository.js";
import type { Repositories, RepositorySet } from "../ports/repositories.js";

/** What an adapter hands the suite. */
export interface RepositoryHarness {
  /** The repositories under test (the suite calls `init()` once before the tests). */
  repositories: Repositories;
  /** Empties every store between tests (fast: no schema changes). */
  reset(): Promise<void>;
  /** Releases everything after the last test (closes connections, drops scratch databases). */
  destroy(): Promise<void>;
}

export interface RepositoryConformanceOptions {
  /** When set, the suite is skipped with this reason (e.g. a missing test service). */
  skip?: string | null;
  /** Parallel operations in the concurrency tests (default 50). */
  concurrency?: number;
}

/**
 * Declares the suite. `factory` runs once (before all tests); `reset` runs
 * before each test.
 */
export function describeRepositoryConformance(
  name: string,
  factory: () => Promise<RepositoryHarness>,
  options: RepositoryConformanceOptions = {},
): void {
  const parallel = options.concurrency ?? 50;
  describe(`Repositories conformance: ${name}`, () => {
    if (options.skip) {
      it.skip(`skipped: ${options.skip}`, () => {});
      return;
    }
    let harness: RepositoryHarness | undefined;
    let repos: Repositories;

    beforeAll(async () => {
      harness = await factory();
      repos = harness.repositories;
      await repos.init?.();
    });
    afterAll(async () => {
      await harness?.destroy();
    });
    beforeEach(async () => {
      await harness?.reset();
    });

    /** A template with one version, so instances can refer to it. */
    async function template(templateName = "hello"): Promise<void> {
      await repos.templates.addVersion(
        definition(templateName),
        `sha256:${templateName}-1`,
        time(0),
      );
    }

    /** The Brain's placement: reserve + state change + event + outbox command, in one transaction. */
    async function place(
      set: RepositorySet,
      instanceId: string,
      nodeId: string,
      ports: number[],
      at = time(10),
    ) {
      const instance = await set.instances.get(instanceId);
      if (!instance) throw new Error(`no instance ${instanceId}`);
      await set.nodes.reserve(nodeId, instanceId, instance.resources, ports, at);
      const { instance: placed } = await set.instances.transition(instanceId, {
        expected: { state: instance.state, version: instance.version },
        trigger: "schedule",
        reason: `placed on ${nodeId}`,
        actor: SYSTEM,
        at,
        change: {
          nodeId,
          epoch: instance.epoch + 1,
          ports: Object.fromEntries(ports.map((port, index) => [`p${index}`, port])),
        },
      });
      await set.commands.enqueue(
        {
          id: `cmd-prepare-${instanceId}`,
          nodeId,
          instanceId,
          type: "prepare",
          payload: { template: placed.templateName },
          epoch: placed.epoch,
        },
        at,
      );
      return placed;
    }

    describe("templates", () => {
      it("numbers versions from 1 and skips a push that changes nothing", async () => {
        const first = await repos.templates.addVersion(definition("hello"), "sha256:a", time(0));
        expect(first.created).toBe(true);
        expect(first.version.version).toBe(1);
        const same = await repos.templates.addVersion(definition("hello"), "sha256:a", time(1));
        expect(same).toEqual({ version: first.version, created: false });
        const second = await repos.templates.addVersion(
          definition("hello", { description: "v2" }),
          "sha256:b",
          time(2),
        );
        expect(second.version.version).toBe(2);
        expect(await repos.templates.get("hello")).toEqual({
          name: "hello",
          description: "v2",
          latestVersion: 2,
          createdAt: time(0),
          updatedAt: time(2),
        });
        expect((await repos.templates.getVersion("hello"))?.version).toBe(2);
        expect((await repos.templates.getVersion("hello", 1))?.definition).toEqual(
          definition("hello"),
        );
        expect((await repos.templates.listVersions("hello")).map((v) => v.version)).toEqual([1, 2]);
        expect((await repos.templates.list()).map((t) => t.name)).toEqual(["hello"]);
        expect(await repos.templates.get("missing")).toBeNull();
        expect(await repos.templates.getVersion("missing")).toBeNull();
        expect(await repos.templates.getVersion("hello", 3)).toBeNull();
        expect(await repos.templates.listVersions("missing")).toEqual([]);
      });

      it("round-trips a full definition exactly", async () => {
        const full = definition("full", {
          description: "everything",
          files: { substitute: ["**/*.txt"], link: ["**/*.jar"], merge: { "a.json": "json" } },
          // biome-ignore lint/suspicious/noTemplateCurlyInString: a template placeholder, stored verbatim
          env: { GREETING: "${GREETING}", EMPTY: "" },
          variables: {
            GREETING: { type: "string", default: "héllo ✓", maxLength: 200, label: "Greeting" },
            LEVEL: { type: "enum", values: ["easy", "hard"], required: true },
            PASSWORD: { type: "string", secret: true },
            SLOTS: { type: "integer", min: 1, max: 64, default: 8 },
          },
          replaceLostAfterSeconds: 120,
        });
        const { version } = await repos.templates.addVersion(full, "sha256:full", time(0));
        expect(version.definition).toEqual(full);
        expect((await repos.templates.getVersion("full", 1))?.definition).toEqual(full);
      });

      it("numbers concurrent pushes without gaps or duplicates", async () => {
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            repos.templates.addVersion(definition("busy"), `sha256:${i}`, time(i)),
          ),
        );
        expect(results.map((r) => r.version.version).sort((a, b) => a - b)).toEqual(
          Array.from({ length: 10 }, (_, i) => i + 1),
        );
        expect((await repos.templates.get("busy"))?.latestVersion).toBe(10);
      });

      it("deletes a template only while no instance uses it", async () => {
        await template("hello");
        await repos.instances.create(newInstance("i1"), time(1));
        await expectError(repos.templates.delete("hello"), "CONFLICT");
        expect(await repos.templates.get("hello")).not.toBeNull();
        await repos.instances.update("i1", { state: "REQUESTED" }, { state: "DESTROYED" }, time(2));
        await repos.templates.delete("hello");
        expect(await repos.templates.get("hello")).toBeNull();
        expect(await repos.templates.listVersions("hello")).toEqual([]);
        await expectError(repos.templates.delete("hello"), "NOT_FOUND");
      });
    });

    describe("nodes", () => {
      it("registers a node ONLINE with nothing allocated; listings never carry its credential", async () => {
        const created = await repos.nodes.create(newNode("n1"), "cred-hash-n1", time(0));
        expect(created).toEqual({
          ...newNode("n1"),
          status: "ONLINE",
          drainRequested: false,
          allocated: { memoryMb: 0, cpu: 0, diskMb: 0 },
          unavailableRuntimes: [],
          lastSeenAt: null,
          createdAt: time(0),
        });
        expect(await repos.nodes.get("n1")).toEqual(created);
        expect(await repos.nodes.list()).toEqual([created]);
        expect(JSON.stringify(await repos.nodes.list())).not.toContain("cred-hash-n1");
        expect(await repos.nodes.findByCredentialHash("cred-hash-n1")).toEqual(created);
        expect(await repos.nodes.findByCredentialHash("nope")).toBeNull();
        expect(await repos.nodes.get("missing")).toBeNull();
        await expectError(repos.nodes.create(newNode("n1"), "other", time(0)), "CONFLICT");
        await expectError(repos.nodes.create(newNode("n2"), "cred-hash-n1", time(0)), "CONFLICT");
        await repos.nodes.setCredentialHash("n1", "rotated");
        expect(await repos.nodes.findByCredentialHash("cred-hash-n1")).toBeNull();
        expect((await repos.nodes.findByCredentialHash("rotated"))?.id).toBe("n1");
        await expectError(repos.nodes.setCredentialHash("missing", "x"), "NOT_FOUND");
      });

      it("filters and counts by status; keeps the drain intent and last-seen time", async () => {
        for (const id of ["a", "b", "c"]) await repos.nodes.create(newNode(id), `h-${id}`, time(0));
        const drained = await repos.nodes.setStatus("b", "DRAINING", { drainRequested: true });
        expect(drained.status).toBe("DRAINING");
        expect(drained.drainRequested).toBe(true);
        const offline = await repos.nodes.setStatus("c", "OFFLINE", { lastSeenAt: time(5) });
        expect(offline.lastSeenAt).toEqual(time(5));
        expect((await repos.nodes.list({ status: "ONLINE" })).map((n) => n.id)).toEqual(["a"]);
        expect(
          (await repos.nodes.list({ status: ["DRAINING", "OFFLINE"] })).map((n) => n.id),
        ).toEqual(["b", "c"]);
        expect(await repos.nodes.countByStatus()).toEqual({ ONLINE: 1, DRAINING: 1, OFFLINE: 1 });
        // A status change alone leaves the operator's drain intent as it was.
        expect((await repos.nodes.setStatus("b", "OFFLINE")).drainRequested).toBe(true);
        await expectError(repos.nodes.setStatus("missing", "ONLINE"), "NOT_FOUND");
        await repos.nodes.touch("a", time(9));
        expect((await repos.nodes.get("a"))?.lastSeenAt).toEqual(time(9));
        await expectError(repos.nodes.touch("missing", time(9)), "NOT_FOUND");
        expect(await repos.nodes.touchMany(["a", "b", "missing"], time(11))).toBe(2);
        expect((await repos.nodes.get("a"))?.lastSeenAt).toEqual(time(11));
        expect((await repos.nodes.get("b"))?.lastSeenAt).toEqual(time(11));
        expect((await repos.nodes.get("c"))?.lastSeenAt).toEqual(time(5));
        expect(await repos.nodes.touchMany([], time(12))).toBe(0);
      });

      it("updates what a node reports; capacity changes move what fits", async () => {
        await repos.nodes.create(newNode("n1"), "h", time(0));
        const updated = await repos.nodes.updateInventory("n1", {
          name: "renamed",
          labels: { region: "eu" },
          runtimes: ["process", "docker"],
          agentVersion: "2.0.0",
          portRange: { from: 40000, to: 40100 },
          capacity: { memoryMb: 8192, cpu: 8, diskMb: 20000 },
        });
        expect(updated).toMatchObject({
          name: "renamed",
          labels: { region: "eu" },
          runtimes: ["process", "docker"],
          agentVersion: "2.0.0",
          portRange: { from: 40000, to: 40100 },
          capacity: { memoryMb: 8192, cpu: 8, diskMb: 20000 },
        });
        expect(await repos.nodes.get("n1")).toEqual(updated);
        // What the agent says of its runtimes' health, kept until it changes.
        expect(updated.unavailableRuntimes).toEqual([]);
        const down = [
          { kind: "docker", reason: "engine did not answer within 5 s", since: time(1) },
        ];
        expect(
          (await repos.nodes.updateInventory("n1", { unavailableRuntimes: down }))
            .unavailableRuntimes,
        ).toEqual(down);
        expect((await repos.nodes.list())[0]?.unavailableRuntimes).toEqual(down);
        await repos.nodes.updateInventory("n1", { unavailableRuntimes: [] });
        expect((await repos.nodes.get("n1"))?.unavailableRuntimes).toEqual([]);
        await repos.nodes.reserve(
          "n1",
          "big",
          { memoryMb: 8000, cpu: 7.5, diskMb: 100 },
          [],
          time(1),
        );
        await expectError(repos.nodes.updateInventory("missing", { name: "x" }), "NOT_FOUND");
      });

      it("reserves resources and ports, and releases them", async () => {
        await repos.nodes.create(newNode("n1"), "h", time(0));
        const reservation = await repos.nodes.reserve(
          "n1",
          "i1",
          { memoryMb: 512, cpu: 0.25, diskMb: 100 },
          [30001, 30000],
          time(1),
        );
        expect(reservation).toEqual({
          nodeId: "n1",
          instanceId: "i1",
          resources: { memoryMb: 512, cpu: 0.25, diskMb: 100 },
          ports: [30000, 30001],
          createdAt: time(1),
        });
        expect(await repos.nodes.getReservation("i1")).toEqual(reservation);
        expect((await repos.nodes.get("n1"))?.allocated).toEqual({
          memoryMb: 512,
          cpu: 0.25,
          diskMb: 100,
        });
        expect(await repos.nodes.listPortAllocations({ nodeId: "n1" })).toEqual([
          { nodeId: "n1", port: 30000, instanceId: "i1" },
          { nodeId: "n1", port: 30001, instanceId: "i1" },
        ]);
        expect(await repos.nodes.release("i1")).toEqual(reservation);
        expect(await repos.nodes.release("i1")).toBeNull();
        expect(await repos.nodes.getReservation("i1")).toBeNull();
        expect((await repos.nodes.get("n1"))?.allocated).toEqual({
          memoryMb: 0,
          cpu: 0,
          diskMb: 0,
        });
        expect(await repos.nodes.listPortAllocations()).toEqual([]);
      });

      it("refuses what does not fit and then reserves nothing", async () => {
        await repos.nodes.create(newNode("n1", { reservedPorts: [22] }), "h1", time(0));
        await repos.nodes.reserve(
          "n1",
          "i1",
          { memoryMb: 3000, cpu: 1, diskMb: 10 },
          [30000],
          time(1),
        );
        const small = { memoryMb: 100, cpu: 0.1, diskMb: 10 };
        const before = await repos.nodes.get("n1");

        const capacity = await expectError(
          repos.nodes.reserve(
            "n1",
            "i2",
            { memoryMb: 2000, cpu: 0.1, diskMb: 10 },
            [30005],
            time(2),
          ),
          "CONFLICT",
        );
        expect(capacity.details.reason).toBe("capacity");
        const ports = await expectError(
          repos.nodes.reserve("n1", "i2", small, [30004, 30000], time(2)),
          "CONFLICT",
        );
        expect(ports.details).toMatchObject({ reason: "ports", ports: [30000] });
        const host = await expectError(
          repos.nodes.reserve("n1", "i2", small, [22], time(2)),
          "CONFLICT",
        );
        expect(host.details.reason).toBe("ports");
        const twice = await expectError(
          repos.nodes.reserve("n1", "i1", small, [30009], time(2)),
          "CONFLICT",
        );
        expect(twice.details.reason).toBe("reserved");
        await expectError(repos.nodes.reserve("missing", "i2", small, [], time(2)), "NOT_FOUND");

        // Nothing of the refused attempts stayed behind.
        expect(await repos.nodes.get("n1")).toEqual(before);
        expect(await repos.nodes.getReservation("i2")).toBeNull();
        expect(
          (await repos.nodes.listPortAllocations({ nodeId: "n1" })).map((a) => a.port),
        ).toEqual([22, 30000]);

        await repos.nodes.setStatus("n1", "DRAINING", { drainRequested: true });
        const status = await expectError(
          repos.nodes.reserve("n1", "i2", small, [], time(3)),
          "CONFLICT",
        );
        expect(status.details.reason).toBe("status");
      });

      it("leaves nothing behind when a refused reservation is caught inside a transaction", async () => {
        await repos.nodes.create(newNode("n1"), "h1", time(0));
        await repos.nodes.create(newNode("n2"), "h2", time(0));
        await repos.nodes.reserve(
          "n1",
          "other",
          { memoryMb: 1, cpu: 0, diskMb: 0 },
          [30001],
          time(0),
        );
        const before = await repos.nodes.get("n1");
        const placedOn = await repos.transaction(async (set) => {
          for (const nodeId of ["n1", "n2"]) {
            try {
              // Port 30000 is free on both, 30001 only on n2: n1 refuses after taking 30000.
              await set.nodes.reserve(
                nodeId,
                "i1",
                { memoryMb: 64, cpu: 0.5, diskMb: 1 },
                [30000, 30001],
                time(1),
              );
              return nodeId;
            } catch (error) {
              if (!OrchestratorError.hasCode(error, "CONFLICT")) throw error;
            }
          }
          return null;
        });
        expect(placedOn).toBe("n2");
        expect(await repos.nodes.get("n1")).toEqual(before);
        expect(
          (await repos.nodes.listPortAllocations({ nodeId: "n1" })).map((a) => a.port),
        ).toEqual([30001]);
        expect((await repos.nodes.getReservation("i1"))?.nodeId).toBe("n2");
      });

      it("applies the overcommit factor to memory and CPU, never to disk", async () => {
        await repos.nodes.create(
          newNode("n1", { overcommit: 2, capacity: { memoryMb: 1000, cpu: 1, diskMb: 1000 } }),
          "h",
          time(0),
        );
        await repos.nodes.reserve("n1", "a", { memoryMb: 2000, cpu: 2, diskMb: 500 }, [], time(1));
        await expectError(
          repos.nodes.reserve("n1", "b", { memoryMb: 1, cpu: 0, diskMb: 0 }, [], time(1)),
          "CONFLICT",
        );
        await repos.nodes.release("a");
        await expectError(
          repos.nodes.reserve("n1", "c", { memoryMb: 0, cpu: 0, diskMb: 1001 }, [], time(1)),
          "CONFLICT",
        );
      });

      it("keeps host-reserved ports taken, and follows changes to them", async () => {
        await repos.nodes.create(newNode("n1", { reservedPorts: [22, 80] }), "h", time(0));
        expect(await repos.nodes.listPortAllocations({ nodeId: "n1" })).toEqual([
          { nodeId: "n1", port: 22, instanceId: null },
          { nodeId: "n1", port: 80, instanceId: null },
        ]);
        await repos.nodes.reserve("n1", "i1", { memoryMb: 1, cpu: 0, diskMb: 0 }, [443], time(1));
        const updated = await repos.nodes.updateInventory("n1", { reservedPorts: [80, 443] });
        expect(updated.reservedPorts).toEqual([80, 443]);
        expect(await repos.nodes.listPortAllocations({ nodeId: "n1" })).toEqual([
          { nodeId: "n1", port: 80, instanceId: null },
          { nodeId: "n1", port: 443, instanceId: "i1" },
        ]);
        await repos.nodes.reserve("n1", "i2", { memoryMb: 1, cpu: 0, diskMb: 0 }, [22], time(2));
      });

      it("deletes a node only when no instance holds anything on it", async () => {
        await repos.nodes.create(newNode("n1", { reservedPorts: [22] }), "h", time(0));
        await repos.nodes.reserve("n1", "i1", { memoryMb: 1, cpu: 0, diskMb: 0 }, [30000], time(1));
        await expectError(repos.nodes.delete("n1"), "CONFLICT");
        await repos.nodes.release("i1");
        await repos.nodes.delete("n1");
        expect(await repos.nodes.get("n1")).toBeNull();
        expect(await repos.nodes.listPortAllocations()).toEqual([]);
        await expectError(repos.nodes.delete("n1"), "NOT_FOUND");
      });

      it(`never over-commits or double-allocates a port under ${parallel} concurrent placements`, async () => {
        await template();
        // Room for 20 instances of 256 MiB; ports drawn from a pool of 30, so some collide.
        await repos.nodes.create(
          newNode("n1", { capacity: { memoryMb: 20 * 256, cpu: 64, diskMb: 100_000 } }),
          "h",
          time(0),
        );
        const ids = Array.from({ length: parallel }, (_, i) => `i${i}`);
        for (const id of ids) await repos.instances.create(newInstance(id), time(1));
        const outcomes = await Promise.allSettled(
          ids.map((id, i) =>
            repos.transaction((set) => place(set, id, "n1", [30000 + (i % 30)], time(2))),
          ),
        );
        const placed = ids.filter((_, i) => outcomes[i]?.status === "fulfilled");
        for (const outcome of outcomes) {
          if (outcome.status === "rejected") {
            expect(outcome.reason?.code, String(outcome.reason)).toBe("CONFLICT");
          }
        }
        expect(placed.length).toBeGreaterThan(0);
        expect(placed.length).toBeLessThanOrEqual(20);
        const node = await repos.nodes.get("n1");
        expect(node?.allocated.memoryMb).toBe(placed.length * 256);
        const allocations = await repos.nodes.listPortAllocations({ nodeId: "n1" });
        expect(allocations).toHaveLength(placed.length);
        expect(new Set(allocations.map((a) => a.port)).size).toBe(placed.length);
        expect(new Set(allocations.map((a) => a.instanceId))).toEqual(new Set(placed));
        expect(await repos.instances.count({ state: "SCHEDULED" })).toBe(placed.length);
        expect(await repos.instances.count({ state: "REQUESTED" })).toBe(parallel - placed.length);
        expect(await repos.events.lastSeq()).toBe(placed.length);
        expect((await repos.commands.countByStatus()).pending).toBe(placed.length);
      });
    });

    describe("instances", () => {
      it("creates and reads back an instance", async () => {
        await template();
        const input = newInstance("i1", {
          owner: "u1",
          variables: { GREETING: "héllo", EMPTY: "" },
          resources: { memoryMb: 256, cpu: 0.25, diskMb: 64 },
        });
        const created = await repos.instances.create(input, time(1));
        const { secretVariables: _, ...fields } = input;
        expect(created).toEqual({
          ...fields,
          failure: null,
          reportSeq: 0,
          version: 1,
          secretVariables: [],
          createdAt: time(1),
          updatedAt: time(1),
        });
        expect(await repos.instances.get("i1")).toEqual(created);
        expect(await repos.instances.get("missing")).toBeNull();
        await expectError(repos.instances.create(input, time(1)), "CONFLICT");
        await expectError(
          repos.instances.create(newInstance("i2", { templateVersion: 2 }), time(1)),
          "NOT_FOUND",
        );
        await expectError(
          repos.instances.create(newInstance("i3", { templateName: "nope" }), time(1)),
          "NOT_FOUND",
        );
      });

      it("keeps secret variable values out of every listing", async () => {
        await template();
        await repos.instances.create(
          newInstance("i1", {
            variables: { GREETING: "hi", PASSWORD: "s3cr3t-value" },
            secretVariables: ["PASSWORD"],
          }),
          time(1),
        );
        const listed = await repos.instances.list();
        expect(listed.items[0]?.variables).toEqual({ GREETING: "hi" });
        expect(listed.items[0]?.secretVariables).toEqual(["PASSWORD"]);
        expect(JSON.stringify(listed)).not.toContain("s3cr3t-value");
        expect((await repos.instances.get("i1"))?.variables).toEqual({ GREETING: "hi" });
        expect((await repos.instances.get("i1", { includeSecrets: true }))?.variables).toEqual({
          GREETING: "hi",
          PASSWORD: "s3cr3t-value",
        });
        const updated = await repos.instances.update(
          "i1",
          { state: "REQUESTED" },
          { desiredState: "stopped" },
          time(2),
        );
        expect(JSON.stringify(updated)).not.toContain("s3cr3t-value");
        await expectError(
          repos.instances.create(
            newInstance("i2", { variables: {}, secretVariables: ["PASSWORD"] }),
            time(1),
          ),
          "VALIDATION_FAILED",
        );
      });

      it("filters, counts and pages through instances in creation order", async () => {
        await template("a");
        await template("b");
        const specs: [string, Partial<NewInstance>, number][] = [
          ["i1", { templateName: "a", owner: "u1" }, 1],
          ["i2", { templateName: "b", owner: "u2", state: "SCHEDULED", nodeId: "n1" }, 2],
          ["i4", { templateName: "a", owner: "u1", state: "RUNNING", nodeId: "n1" }, 3],
          ["i3", { templateName: "a", owner: "u1", state: "RUNNING", nodeId: "n2" }, 3],
          ["i5", { templateName: "b", owner: "u2", desiredState: "stopped" }, 4],
          ["i6", { templateName: "a", state: "STOPPED", nodeId: "n2" }, 5],
          ["i7", { templateName: "b", state: "FAILED", nodeId: "n1" }, 6],
        ];
        for (const [id, overrides, second] of specs) {
          await repos.instances.create(newInstance(id, overrides), time(second));
        }
        const ids = async (filter: Parameters<Repositories["instances"]["list"]>[0]) =>
          (await repos.instances.list(filter)).items.map((i) => i.id);
        // Ties on creation time are ordered by id.
        expect(await ids({})).toEqual(["i1", "i2", "i3", "i4", "i5", "i6", "i7"]);
        expect(await ids({ state: "RUNNING" })).toEqual(["i3", "i4"]);
        expect(await ids({ state: ["REQUESTED", "FAILED"] })).toEqual(["i1", "i5", "i7"]);
        expect(await ids({ state: [] })).toEqual([]);
        expect(await ids({ nodeId: "n1" })).toEqual(["i2", "i4", "i7"]);
        expect(await ids({ templateName: "b" })).toEqual(["i2", "i5", "i7"]);
        expect(await ids({ owner: "u1", state: "RUNNING" })).toEqual(["i3", "i4"]);
        expect(await ids({ desiredState: "stopped" })).toEqual(["i5"]);
        expect(await repos.instances.count({ templateName: "a" })).toBe(4);
        expect(await repos.instances.count()).toBe(7);
        expect(await repos.instances.countByState()).toEqual({
          REQUESTED: 2,
          SCHEDULED: 1,
          RUNNING: 2,
          STOPPED: 1,
          FAILED: 1,
        });

        const pages: string[][] = [];
        let after: string | undefined;
        do {
          const page = await repos.instances.list({ limit: 3, ...(after ? { after } : {}) });
          pages.push(page.items.map((i) => i.id));
          after = page.next ?? undefined;
        } while (after);
        expect(pages).toEqual([["i1", "i2", "i3"], ["i4", "i5", "i6"], ["i7"]]);
        const exact = await repos.instances.list({ limit: 7 });
        expect(exact.next).toBeNull();
        await expectError(repos.instances.list({ after: "not-a-cursor" }), "VALIDATION_FAILED");
        await expectError(repos.instances.list({ limit: 0 }), "VALIDATION_FAILED");
      });

      it("applies an update only while the instance is as expected", async () => {
        await template();
        await repos.instances.create(newInstance("i1"), time(1));
        const scheduled = await repos.instances.update(
          "i1",
          { state: "REQUESTED", version: 1 },
          { state: "SCHEDULED", nodeId: "n1", epoch: 1, ports: { game: 30000 } },
          time(2),
        );
        expect(scheduled).toMatchObject({
          state: "SCHEDULED",
          nodeId: "n1",
          epoch: 1,
          ports: { game: 30000 },
          version: 2,
          updatedAt: time(2),
        });
        const stale = await expectError(
          repos.instances.update("i1", { state: "REQUESTED" }, { state: "SCHEDULED" }, time(3)),
          "CONFLICT",
        );
        expect(stale.details.reason).toBe("stale");
        await expectError(
          repos.instances.update("i1", { state: "SCHEDULED", version: 1 }, { epoch: 9 }, time(3)),
          "CONFLICT",
        );
        await expectError(
          repos.instances.update("i1", { state: "SCHEDULED" }, { state: "RUNNING" }, time(3)),
          "ILLEGAL_TRANSITION",
        );
        await expectError(
          repos.instances.update("missing", { state: "SCHEDULED" }, { epoch: 2 }, time(3)),
          "NOT_FOUND",
        );
        expect(await repos.instances.get("i1")).toEqual(scheduled);

        const failed = await repos.instances.update(
          "i1",
          { state: "SCHEDULED", version: 2 },
          {
            state: "FAILED",
            failure: { kind: "prepare-failed", message: "disk full", exitCode: null },
            reportSeq: 4,
            desiredState: "stopped",
          },
          time(4),
        );
        expect(failed).toMatchObject({
          state: "FAILED",
          failure: { kind: "prepare-failed", message: "disk full", exitCode: null },
          reportSeq: 4,
          desiredState: "stopped",
          version: 3,
        });
        const cleared = await repos.instances.update(
          "i1",
          { state: "FAILED" },
          { failure: null, nodeId: null },
          time(5),
        );
        expect(cleared).toMatchObject({ failure: null, nodeId: null, state: "FAILED" });
      });

      it("transitions by the lifecycle table and records the event", async () => {
        await template();
        await repos.instances.create(newInstance("i1"), time(1));
        const { instance, event } = await repos.instances.transition("i1", {
          expected: { state: "REQUESTED" },
          trigger: "schedule",
          reason: "placed on n1",
          actor: SYSTEM,
          at: time(2),
          change: { nodeId: "n1", epoch: 1 },
        });
        expect(instance).toMatchObject({ state: "SCHEDULED", nodeId: "n1", epoch: 1, version: 2 });
        expect(event).toEqual({
          seq: 1,
          instanceId: "i1",
          from: "REQUESTED",
          to: "SCHEDULED",
          at: time(2),
          reason: "placed on n1",
          actor: SYSTEM,
        });
        await expectError(
          repos.instances.transition("i1", {
            expected: { state: "SCHEDULED" },
            trigger: "ready",
            reason: "x",
            actor: SYSTEM,
            at: time(3),
          }),
          "ILLEGAL_TRANSITION",
        );
        await expectError(
          repos.instances.transition("i1", {
            expected: { state: "REQUESTED" },
            trigger: "schedule",
            reason: "again",
            actor: SYSTEM,
            at: time(3),
          }),
          "CONFLICT",
        );
        expect(await repos.events.lastSeq()).toBe(1);
        expect(await repos.events.listForInstance("i1")).toEqual([event]);
      });

      it(`lets exactly one of ${parallel} concurrent transitions of one instance win`, async () => {
        await template();
        await repos.instances.create(newInstance("i1"), time(1));
        const outcomes = await Promise.allSettled(
          Array.from({ length: parallel }, (_, i) =>
            repos.instances.transition("i1", {
              expected: { state: "REQUESTED", version: 1 },
              trigger: i % 2 === 0 ? "schedule" : "destroy",
              reason: `attempt ${i}`,
              actor: SYSTEM,
              at: time(2),
            }),
          ),
        );
        const won = outcomes.filter((o) => o.status === "fulfilled");
        expect(won).toHaveLength(1);
        for (const outcome of outcomes) {
          if (outcome.status === "rejected") expect(outcome.reason?.code).toBe("CONFLICT");
        }
        const instance = await repos.instances.get("i1");
        expect(instance?.version).toBe(2);
        expect(await repos.events.listForInstance("i1")).toHaveLength(1);
      });

      it("releases the reservation on reaching DESTROYED; deletes only DESTROYED rows", async () => {
        await template();
        await repos.nodes.create(newNode("n1"), "h", time(0));
        await repos.instances.create(newInstance("i1"), time(1));
        await repos.transaction((set) => place(set, "i1", "n1", [30000]));
        await expectError(repos.instances.delete("i1"), "CONFLICT");
        const destroying = await repos.instances.transition("i1", {
          expected: { state: "SCHEDULED" },
          trigger: "destroy",
          reason: "user asked",
          actor: { kind: "user", id: "u1" },
          at: time(20),
        });
        expect((await repos.nodes.get("n1"))?.allocated.memoryMb).toBe(256);
        await repos.instances.transition("i1", {
          expected: { state: "DESTROYING", version: destroying.instance.version },
          trigger: "destroyed",
          reason: "node removed it",
          actor: { kind: "node", id: "n1" },
          at: time(21),
        });
        expect((await repos.nodes.get("n1"))?.allocated).toEqual({
          memoryMb: 0,
          cpu: 0,
          diskMb: 0,
        });
        expect(await repos.nodes.listPortAllocations()).toEqual([]);
        await repos.instances.delete("i1");
        expect(await repos.instances.get("i1")).toBeNull();
        expect((await repos.events.listForInstance("i1")).map((e) => e.to)).toEqual([
          "SCHEDULED",
          "DESTROYING",
          "DESTROYED",
        ]);
        await expectError(repos.instances.delete("i1"), "NOT_FOUND");
      });

      it("keeps a placement note apart from the instance's version, and drops it with the instance", async () => {
        await template();
        const created = await repos.instances.create(newInstance("i1"), time(1));
        expect(await repos.instances.getPendingPlacement("i1")).toBeNull();
        const explanation = { lines: ["2 nodes: insufficient memory"], nodes: 2, feasible: 0 };
        await repos.instances.setPendingPlacement("i1", { at: time(2), explanation });
        expect(await repos.instances.getPendingPlacement("i1")).toEqual({
          at: time(2),
          explanation,
        });
        const newer = { lines: ["1 node: draining"], nodes: 1, feasible: 0 };
        await repos.instances.setPendingPlacement("i1", { at: time(3), explanation: newer });
        expect(await repos.instances.getPendingPlacement("i1")).toEqual({
          at: time(3),
          explanation: newer,
        });
        // Not a change of the instance: no version bump, no event.
        expect((await repos.instances.get("i1"))?.version).toBe(created.version);
        expect(await repos.events.listForInstance("i1")).toEqual([]);
        await repos.instances.setPendingPlacement("i1", null);
        expect(await repos.instances.getPendingPlacement("i1")).toBeNull();
        // Unknown instances are ignored.
        await repos.instances.setPendingPlacement("ghost", { at: time(4), explanation });
        expect(await repos.instances.getPendingPlacement("ghost")).toBeNull();
        // The note goes with the row.
        await repos.instances.setPendingPlacement("i1", { at: time(5), explanation });
        await repos.instances.update("i1", { state: "REQUESTED" }, { state: "DESTROYED" }, time(6));
        await repos.instances.delete("i1");
        expect(await repos.instances.getPendingPlacement("i1")).toBeNull();
      });
    });

    describe("events", () => {
      it("hands out increasing seqs across instance and node events, resumable after any seq", async () => {
        expect(await repos.events.lastSeq()).toBe(0);
        expect(await repos.events.listAfter(0, 10)).toEqual([]);
        const e1 = await repos.events.append({
          instanceId: "i1",
          from: "REQUESTED",
          to: "SCHEDULED",
          at: time(1),
          reason: "placed",
          actor: SYSTEM,
        });
        const e2 = await repos.events.appendNodeEvent({
          nodeId: "n1",
          from: "ONLINE",
          to: "OFFLINE",
          at: time(2),
          reason: "silent for 15 s",
          actor: SYSTEM,
        });
        const e3 = await repos.events.append({
          instanceId: "i1",
          from: "SCHEDULED",
          to: "LOST",
          at: time(2),
          reason: "node offline",
          actor: SYSTEM,
        });
        expect([e1.seq, e2.seq, e3.seq]).toEqual([1, 2, 3]);
        expect(await repos.events.listAfter(0, 10)).toEqual([
          { kind: "instance", ...e1 },
          { kind: "node", ...e2 },
          { kind: "instance", ...e3 },
        ]);
        expect((await repos.events.listAfter(1, 10)).map((e) => e.seq)).toEqual([2, 3]);
        expect((await repos.events.listAfter(0, 2)).map((e) => e.seq)).toEqual([1, 2]);
        expect(await repos.events.listAfter(3, 10)).toEqual([]);
        expect(await repos.events.lastSeq()).toBe(3);
        expect(await repos.events.listForInstance("i1")).toEqual([e1, e3]);
        expect(await repos.events.listForInstance("i1", { afterSeq: 1 })).toEqual([e3]);
        expect(await repos.events.listForInstance("i1", { limit: 1 })).toEqual([e1]);
        expect(await repos.events.listForInstance("n1")).toEqual([]);
      });

      it(`gives ${parallel} concurrent appends distinct, gap-free seqs`, async () => {
        const events = await Promise.all(
          Array.from({ length: parallel }, (_, i) =>
            repos.events.append({
              instanceId: `i${i}`,
              from: "REQUESTED",
              to: "SCHEDULED",
              at: time(1),
              reason: "placed",
              actor: SYSTEM,
            }),
          ),
        );
        expect(events.map((e) => e.seq).sort((a, b) => a - b)).toEqual(
          Array.from({ length: parallel }, (_, i) => i + 1),
        );
        expect(await repos.events.lastSeq()).toBe(parallel);
        const listed = await repos.events.listAfter(0, parallel);
        expect(listed.map((e) => e.seq)).toEqual(Array.from({ length: parallel }, (_, i) => i + 1));
      });
    });

    describe("transactions", () => {
      it("commits everything together", async () => {
        await template();
        await repos.nodes.create(newNode("n1"), "h", time(0));
        await repos.instances.create(newInstance("i1"), time(1));
        const placed = await repos.transaction((set) => place(set, "i1", "n1", [30000]));
        expect(placed.state).toBe("SCHEDULED");
        expect((await repos.instances.get("i1"))?.state).toBe("SCHEDULED");
        expect((await repos.nodes.get("n1"))?.allocated.memoryMb).toBe(256);
        expect(await repos.events.lastSeq()).toBe(1);
        expect((await repos.commands.get("cmd-prepare-i1"))?.status).toBe("pending");
      });

      it("writes nothing when the work throws, and passes the error on", async () => {
        await template();
        await repos.nodes.create(newNode("n1"), "h", time(0));
        await repos.instances.create(newInstance("i1"), time(1));
        const boom = new Error("boom after placing");
        await expect(
          repos.transaction(async (set) => {
            await place(set, "i1", "n1", [30000]);
            await set.audit.append({
              at: time(3),
              actor: SYSTEM,
              action: "instance.place",
              target: "instance:i1",
              details: {},
            });
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect((await repos.instances.get("i1"))?.state).toBe("REQUESTED");
        expect((await repos.instances.get("i1"))?.version).toBe(1);
        expect((await repos.nodes.get("n1"))?.allocated.memoryMb).toBe(0);
        expect(await repos.nodes.listPortAllocations()).toEqual([]);
        expect(await repos.events.lastSeq()).toBe(0);
        expect(await repos.commands.get("cmd-prepare-i1")).toBeNull();
        expect((await repos.audit.list()).items).toEqual([]);
        // The same work succeeds afterwards (nothing was left locked or half-written).
        await repos.transaction((set) => place(set, "i1", "n1", [30000]));
        expect(await repos.events.lastSeq()).toBe(1);
      });

      it("returns the work's value", async () => {
        expect(await repos.transaction(async (set) => (await set.users.count()) + 41)).toBe(41);
      });

      it("runs fenced work only while the lease is held at that epoch", async () => {
        const lease = await repos.leases.acquire("scheduler", "brain-a", 1000, time(0));
        expect(lease?.epoch).toBe(1);
        const fence = { name: "scheduler", holder: "brain-a", epoch: 1, now: time(0.5) };
        expect(await repos.transaction(async () => "ran", { fence })).toBe("ran");
        // brain-a pauses; its lease expires and brain-b takes over.
        expect((await repos.leases.acquire("scheduler", "brain-b", 1000, time(2)))?.epoch).toBe(2);
        let ran = false;
        const lost = await expectError(
          repos.transaction(
            async () => {
              ran = true;
            },
            { fence: { ...fence, now: time(0.9) } },
          ),
          "CONFLICT",
        );
        expect(lost.details.reason).toBe("lease-lost");
        expect(ran).toBe(false);
      });
    });

    describe("command outbox", () => {
      const command = (id: string, nodeId = "n1", instanceId = "i1") => ({
        id,
        nodeId,
        instanceId,
        type: "start" as const,
        payload: { attempt: id },
        epoch: 1,
      });

      it("delivers due commands in order until a result comes; the first result wins", async () => {
        const queued = await repos.commands.enqueue(command("c1"), time(0));
        expect(queued).toEqual({
          ...command("c1"),
          status: "pending",
          attempts: 0,
          nextAttemptAt: time(0),
          createdAt: time(0),
          result: null,
          deliveredAt: null,
          completedAt: null,
        });
        await repos.commands.enqueue(command("c2"), time(0));
        await repos.commands.enqueue(command("c3", "n2", "i9"), time(0));
        await expectError(repos.commands.enqueue(command("c1"), time(0)), "CONFLICT");

        const first = await repos.commands.claimDue("n1", {
          now: time(1),
          limit: 10,
          redeliverAt: time(11),
        });
        expect(first.map((c) => [c.id, c.status, c.attempts])).toEqual([
          ["c1", "delivered", 1],
          ["c2", "delivered", 1],
        ]);
        expect(first[0]?.deliveredAt).toEqual(time(1));
        expect(await repos.commands.get("c1")).toEqual(first[0]);
        expect(
          await repos.commands.claimDue("n1", { now: time(5), limit: 10, redeliverAt: time(15) }),
        ).toEqual([]);

        const done = await repos.commands.complete("c1", { ok: true, message: "started" }, time(6));
        expect(done.first).toBe(true);
        expect(done.command).toMatchObject({
          status: "succeeded",
          result: { ok: true, message: "started" },
          completedAt: time(6),
        });
        const repeat = await repos.commands.complete("c1", { ok: false }, time(7));
        expect(repeat.first).toBe(false);
        expect(repeat.command.result).toEqual({ ok: true, message: "started" });

        const again = await repos.commands.claimDue("n1", {
          now: time(11),
          limit: 10,
          redeliverAt: time(21),
        });
        expect(again.map((c) => [c.id, c.attempts])).toEqual([["c2", 2]]);
        expect(
          (await repos.commands.claimDue("n1", { now: time(30), limit: 1, redeliverAt: time(40) }))
            .length,
        ).toBe(1);

        await expectError(
          repos.commands.complete("c3", { ok: true }, time(8), { nodeId: "n1" }),
          "NOT_FOUND",
        );
        expect((await repos.commands.get("c3"))?.status).toBe("pending");
        await expectError(repos.commands.complete("nope", { ok: true }, time(8)), "NOT_FOUND");
        await repos.commands.complete("c2", { ok: false, message: "exit 1" }, time(9), {
          nodeId: "n1",
        });
        expect((await repos.commands.get("c2"))?.status).toBe("failed");
        expect(await repos.commands.countByStatus()).toEqual({
          succeeded: 1,
          failed: 1,
          pending: 1,
        });
        expect((await repos.commands.listForInstance("i1")).map((c) => c.id)).toEqual(["c1", "c2"]);
        expect(await repos.commands.listForInstance("i1", { limit: 1 })).toHaveLength(1);
      });

      it("expires commands that will not be answered", async () => {
        await repos.commands.enqueue(command("c1"), time(0));
        await repos.commands.enqueue(command("c2"), time(0));
        await repos.commands.enqueue(command("old", "n2"), time(0));
        await repos.commands.enqueue(command("new", "n2"), time(100));
        for (const now of [1, 11]) {
          await repos.commands.claimDue("n1", {
            now: time(now),
            limit: 1,
            redeliverAt: time(now + 10),
          });
        }
        // c1 was delivered twice and its redelivery is due: with maxAttempts 2 it expires.
        const expired = await repos.commands.expire({ now: time(21), maxAttempts: 2 });
        expect(expired.map((c) => c.id)).toEqual(["c1"]);
        expect(expired[0]).toMatchObject({ status: "failed", completedAt: time(21) });
        expect(expired[0]?.result?.ok).toBe(false);
        expect(expired[0]?.result?.message).toMatch(/expired/);
        expect((await repos.commands.get("c1"))?.status).toBe("failed");
        expect(
          (
            await repos.commands.claimDue("n1", { now: time(30), limit: 10, redeliverAt: time(40) })
          ).map((c) => c.id),
        ).toEqual(["c2"]);
        const stale = await repos.commands.expire({
          now: time(101),
          maxAttempts: 100,
          createdBefore: time(50),
        });
        expect(stale.map((c) => c.id).sort()).toEqual(["c2", "old"]);
        expect((await repos.commands.get("new"))?.status).toBe("pending");
        expect(await repos.commands.expire({ now: time(200), maxAttempts: 100 })).toEqual([]);
      });

      it("never hands out one command twice to concurrent claimers", async () => {
        for (let i = 0; i < 20; i += 1) {
          await repos.commands.enqueue(command(`c${String(i).padStart(2, "0")}`), time(0));
        }
        const rounds = await Promise.all(
          Array.from({ length: 10 }, () =>
            repos.commands.claimDue("n1", { now: time(1), limit: 5, redeliverAt: time(60) }),
          ),
        );
        const concurrent = rounds.flat().map((c: Command) => c.id);
        expect(concurrent.length).toBeGreaterThan(0);
        expect(new Set(concurrent).size).toBe(concurrent.length);
        // Whatever a concurrent claimer skipped is still there for the next round: nothing is lost.
        const later: string[] = [];
        for (;;) {
          const round = await repos.commands.claimDue("n1", {
            now: time(2),
            limit: 5,
            redeliverAt: time(60),
          });
          if (round.length === 0) break;
          later.push(...round.map((c) => c.id));
        }
        expect([...concurrent, ...later].sort()).toEqual(
          Array.from({ length: 20 }, (_, i) => `c${String(i).padStart(2, "0")}`),
        );
      });
    });

    describe("users, tokens, sessions and join tokens", () => {
      const user = (id: string, username: string) =>
        ({ id, username, role: "operator", disabled: false }) as const;

      it("stores users with unique case-insensitive names; listings never carry hashes", async () => {
        const alice = await repos.users.create(user("u1", "Alice"), "hash-alice", time(0));
        expect(alice).toEqual({ ...user("u1", "Alice"), createdAt: time(0) });
        await repos.users.create({ ...user("u2", "bob"), role: "viewer" }, "hash-bob", time(1));
        expect(await repos.users.count()).toBe(2);
        expect(await repos.users.get("u1")).toEqual(alice);
        expect((await repos.users.list()).map((u) => u.username)).toEqual(["Alice", "bob"]);
        expect(JSON.stringify(await repos.users.list())).not.toContain("hash-");
        expect(JSON.stringify(await repos.users.get("u1"))).not.toContain("hash-");
        expect(await repos.users.findByUsername("ALICE")).toEqual({
          ...alice,
          passwordHash: "hash-alice",
        });
        expect(await repos.users.findByUsername("carol")).toBeNull();
        await expectError(repos.users.create(user("u3", "alice"), "h", time(2)), "CONFLICT");
        await expectError(repos.users.create(user("u1", "carol"), "h", time(2)), "CONFLICT");

        const changed = await repos.users.update("u2", {
          role: "admin",
          disabled: true,
          passwordHash: "hash-bob-2",
          username: "Robert",
        });
        expect(changed).toMatchObject({ role: "admin", disabled: true, username: "Robert" });
        expect((await repos.users.findByUsername("robert"))?.passwordHash).toBe("hash-bob-2");
        await expectError(repos.users.update("u2", { username: "ALICE" }), "CONFLICT");
        await expectError(repos.users.update("missing", { role: "viewer" }), "NOT_FOUND");
      });

      it("finds API tokens by hash until they expire, with their user", async () => {
        await repos.users.create(user("u1", "alice"), "h", time(0));
        const token = await repos.tokens.create(
          {
            id: "t1",
            userId: "u1",
            name: "ci",
            scopes: ["instances:read"],
            createdAt: time(0),
            expiresAt: time(100),
          },
          "token-hash-1",
        );
        expect(token.lastUsedAt).toBeNull();
        await repos.tokens.create(
          {
            id: "t2",
            userId: "u1",
            name: "forever",
            scopes: [],
            createdAt: time(1),
            expiresAt: null,
          },
          "token-hash-2",
        );
        const found = await repos.tokens.findBySecretHash("token-hash-1", time(50));
        expect(found?.token).toEqual(token);
        expect(found?.user).toMatchObject({ id: "u1", username: "alice", role: "operator" });
        expect(await repos.tokens.findBySecretHash("token-hash-1", time(100))).toBeNull();
        expect((await repos.tokens.findBySecretHash("token-hash-2", time(1e6)))?.token.id).toBe(
          "t2",
        );
        expect(await repos.tokens.findBySecretHash("unknown", time(0))).toBeNull();
        await expectError(
          repos.tokens.create(
            {
              id: "t3",
              userId: "u1",
              name: "dup",
              scopes: [],
              createdAt: time(1),
              expiresAt: null,
            },
            "token-hash-1",
          ),
          "CONFLICT",
        );
        const listed = await repos.tokens.listForUser("u1");
        expect(listed.map((t) => t.id)).toEqual(["t1", "t2"]);
        expect(JSON.stringify(listed)).not.toContain("token-hash");
        await repos.tokens.touch("t1", time(60));
        expect((await repos.tokens.get("t1"))?.lastUsedAt).toEqual(time(60));
        await repos.tokens.delete("t1");
        expect(await repos.tokens.get("t1")).toBeNull();
        await expectError(repos.tokens.delete("t1"), "NOT_FOUND");
      });

      it("keeps sessions until they expire, end or their user goes", async () => {
        await repos.users.create(user("u1", "alice"), "h", time(0));
        await repos.users.create(user("u2", "bob"), "h", time(0));
        const session = await repos.sessions.create(
          {
            id: "s1",
            userId: "u1",
            createdAt: time(0),
            expiresAt: time(3600),
            ip: "203.0.113.7",
            userAgent: "Firefox",
          },
          "session-hash-1",
        );
        expect(session.lastSeenAt).toEqual(time(0));
        await repos.sessions.create(
          {
            id: "s2",
            userId: "u1",
            createdAt: time(10),
            expiresAt: time(20),
            ip: null,
            userAgent: null,
          },
          "session-hash-2",
        );
        await repos.sessions.create(
          {
            id: "s3",
            userId: "u2",
            createdAt: time(10),
            expiresAt: time(3600),
            ip: null,
            userAgent: null,
          },
          "session-hash-3",
        );
        const found = await repos.sessions.findBySecretHash("session-hash-1", time(100));
        expect(found?.session).toEqual(session);
        expect(found?.user.username).toBe("alice");
        expect(await repos.sessions.findBySecretHash("session-hash-2", time(20))).toBeNull();
        await repos.sessions.touch("s1", time(200), time(7200));
        expect(
          (await repos.sessions.findBySecretHash("session-hash-1", time(5000)))?.session,
        ).toMatchObject({
          lastSeenAt: time(200),
          expiresAt: time(7200),
        });
        expect((await repos.sessions.listForUser("u1")).map((s) => s.id)).toEqual(["s2", "s1"]);
        expect(JSON.stringify(await repos.sessions.listForUser("u1"))).not.toContain(
          "session-hash",
        );
        expect(await repos.sessions.deleteExpired(time(30))).toBe(1);
        await repos.sessions.delete("s1");
        await repos.sessions.delete("s1");
        expect(await repos.sessions.findBySecretHash("session-hash-1", time(100))).toBeNull();
        expect(await repos.sessions.deleteForUser("u2")).toBe(1);
        await repos.sessions.create(
          {
            id: "s4",
            userId: "u2",
            createdAt: time(10),
            expiresAt: time(3600),
            ip: null,
            userAgent: null,
          },
          "session-hash-4",
        );
        await repos.tokens.create(
          { id: "t1", userId: "u2", name: "x", scopes: [], createdAt: time(0), expiresAt: null },
          "token-of-bob",
        );
        await repos.users.delete("u2");
        expect(await repos.users.get("u2")).toBeNull();
        expect(await repos.sessions.findBySecretHash("session-hash-4", time(100))).toBeNull();
        expect(await repos.tokens.get("t1")).toBeNull();
        await expectError(repos.users.delete("u2"), "NOT_FOUND");
      });

      it("lets a join token be used once, by exactly one of concurrent joiners", async () => {
        const token = await repos.joinTokens.create(
          { id: "j1", createdBy: "u1", createdAt: time(0), expiresAt: time(600) },
          "join-hash-1",
        );
        expect(token).toEqual({
          id: "j1",
          createdBy: "u1",
          createdAt: time(0),
          expiresAt: time(600),
          usedAt: null,
          nodeId: null,
        });
        await repos.joinTokens.create(
          { id: "j2", createdBy: null, createdAt: time(1), expiresAt: time(10) },
          "join-hash-2",
        );
        expect(await repos.joinTokens.consume("join-hash-2", time(10), "n9")).toBeNull();
        const outcomes = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            repos.joinTokens.consume("join-hash-1", time(5), `n${i}`),
          ),
        );
        const used = outcomes.filter((o) => o !== null);
        expect(used).toHaveLength(1);
        expect(used[0]).toMatchObject({ id: "j1", usedAt: time(5) });
        expect(await repos.joinTokens.consume("join-hash-1", time(6), "n1")).toBeNull();
        expect(await repos.joinTokens.consume("unknown", time(6), "n1")).toBeNull();
        const listed = await repos.joinTokens.list();
        expect(listed.map((t) => t.id)).toEqual(["j2", "j1"]);
        expect(JSON.stringify(listed)).not.toContain("join-hash");
        await repos.joinTokens.delete("j2");
        await expectError(repos.joinTokens.delete("j2"), "NOT_FOUND");
      });
    });

    describe("audit log", () => {
      it("appends entries and lists them newest first, filtered and paged", async () => {
        const alice = { kind: "user", id: "u1" } as const;
        const first = await repos.audit.append({
          at: time(1),
          actor: alice,
          action: "instance.create",
          target: "instance:i1",
          details: { template: "hello" },
          source: "203.0.113.7",
        });
        expect(first).toEqual({
          seq: first.seq,
          at: time(1),
          actor: alice,
          action: "instance.create",
          target: "instance:i1",
          details: { template: "hello" },
          source: "203.0.113.7",
        });
        await repos.audit.append({
          at: time(2),
          actor: SYSTEM,
          action: "node.drain",
          target: "node:n1",
          details: {},
        });
        await repos.audit.append({
          at: time(3),
          actor: alice,
          action: "instance.stop",
          target: "instance:i1",
          details: {},
        });
        const all = await repos.audit.list();
        expect(all.items.map((e) => e.action)).toEqual([
          "instance.stop",
          "node.drain",
          "instance.create",
        ]);
        expect(all.items[1]?.source).toBeNull();
        expect(all.next).toBeNull();
        expect((await repos.audit.list({ target: "instance:i1" })).items).toHaveLength(2);
        expect((await repos.audit.list({ actorId: "u1" })).items).toHaveLength(2);
        expect((await repos.audit.list({ action: "node.drain" })).items).toHaveLength(1);
        const page = await repos.audit.list({ limit: 2 });
        expect(page.items.map((e) => e.action)).toEqual(["instance.stop", "node.drain"]);
        const rest = await repos.audit.list({ limit: 2, before: page.next ?? undefined });
        expect(rest.items).toEqual([first]);
        expect(rest.next).toBeNull();
      });
    });

    describe("leases", () => {
      it("takes, renews, refuses, expires and releases with growing epochs", async () => {
        expect(await repos.leases.get("loop")).toBeNull();
        const a = await repos.leases.acquire("loop", "brain-a", 10_000, time(0));
        expect(a).toEqual({ name: "loop", holder: "brain-a", epoch: 1, expiresAt: time(10) });
        expect(await repos.leases.acquire("loop", "brain-b", 10_000, time(5))).toBeNull();
        const renewed = await repos.leases.acquire("loop", "brain-a", 10_000, time(5));
        expect(renewed).toEqual({ ...a, expiresAt: time(15) });
        expect(
          await repos.leases.holds({ name: "loop", holder: "brain-a", epoch: 1, now: time(14) }),
        ).toBe(true);
        expect(
          await repos.leases.holds({ name: "loop", holder: "brain-a", epoch: 1, now: time(15) }),
        ).toBe(false);
        const b = await repos.leases.acquire("loop", "brain-b", 10_000, time(15));
        expect(b?.epoch).toBe(2);
        expect(
          await repos.leases.holds({ name: "loop", holder: "brain-a", epoch: 1, now: time(16) }),
        ).toBe(false);
        expect(await repos.leases.release("loop", "brain-a")).toBe(false);
        expect(await repos.leases.release("loop", "brain-b")).toBe(true);
        const again = await repos.leases.acquire("loop", "brain-a", 10_000, time(16));
        expect(again?.epoch).toBe(3);
        // Retaking one's own expired lease also starts a new epoch.
        expect((await repos.leases.acquire("loop", "brain-a", 10_000, time(30)))?.epoch).toBe(4);
        expect(await repos.leases.get("loop")).toMatchObject({ holder: "brain-a", epoch: 4 });
        await expectError(
          repos.leases.assertHeld({ name: "loop", holder: "brain-a", epoch: 3, now: time(31) }),
          "CONFLICT",
        );
        await repos.leases.assertHeld({ name: "loop", holder: "brain-a", epoch: 4, now: time(31) });
      });

      it("lets exactly one of concurrent acquirers win", async () => {
        const outcomes = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            repos.leases.acquire("race", `brain-${i}`, 10_000, time(0)),
          ),
        );
        const winners = outcomes.filter((lease) => lease !== null);
        expect(winners).toHaveLength(1);
        expect(winners[0]?.epoch).toBe(1);
      });
    });

    describe("live relay", () => {
      it("keeps watch declarations until they expire or are withdrawn", async () => {
        expect(await repos.liveRelay.listWatches(time(0))).toEqual([]);
        await repos.liveRelay.watch(
          "brain-a",
          [
            { instanceId: "i2", kind: "log" },
            { instanceId: "i1", kind: "stats" },
          ],
          time(10),
        );
        await repos.liveRelay.watch("brain-b", [{ instanceId: "i1", kind: "log" }], time(5));
        expect(await repos.liveRelay.listWatches(time(1))).toEqual([
          { instanceId: "i1", kind: "log", watcher: "brain-b" },
          { instanceId: "i1", kind: "stats", watcher: "brain-a" },
          { instanceId: "i2", kind: "log", watcher: "brain-a" },
        ]);
        // Renewing moves the expiry; expired declarations are not listed.
        await repos.liveRelay.watch("brain-b", [{ instanceId: "i1", kind: "log" }], time(20));
        expect((await repos.liveRelay.listWatches(time(15))).map((w) => w.watcher)).toEqual([
          "brain-b",
        ]);
        await repos.liveRelay.unwatch("brain-b", [{ instanceId: "i1", kind: "log" }]);
        expect(await repos.liveRelay.listWatches(time(1))).toHaveLength(2);
        await repos.liveRelay.unwatch("brain-a");
        expect(await repos.liveRelay.listWatches(time(1))).toEqual([]);
        await repos.liveRelay.watch("brain-a", [], time(10)); // nothing to declare: no error
      });

      it("hands items to other replicas in order, after a position, and prunes old ones", async () => {
        expect(await repos.liveRelay.lastItemId()).toBe(0);
        const line = (text: string) => ({
          stream: "stdout",
          line: text,
          at: "2026-01-01T00:00:00Z",
        });
        await repos.liveRelay.append([
          { instanceId: "i1", kind: "log", origin: "brain-a", payload: line("one"), at: time(1) },
          { instanceId: "i2", kind: "log", origin: "brain-a", payload: line("other"), at: time(1) },
          { instanceId: "i1", kind: "log", origin: "brain-b", payload: line("two"), at: time(2) },
          {
            instanceId: "i1",
            kind: "stats",
            origin: "brain-a",
            payload: { cpu: 0.5 },
            at: time(3),
          },
        ]);
        await repos.liveRelay.append([]);
        const all = await repos.liveRelay.listItems(0, { instanceIds: ["i1"] }, 10);
        expect(all.map((item) => item.payload)).toEqual([line("one"), line("two"), { cpu: 0.5 }]);
        expect(all[0]).toMatchObject({
          instanceId: "i1",
          kind: "log",
          origin: "brain-a",
          at: time(1),
        });
        const ids = all.map((item) => item.id);
        expect([...ids].sort((a, b) => a - b)).toEqual(ids);
        expect(await repos.liveRelay.lastItemId()).toBeGreaterThanOrEqual(ids[2]!);
        // Resume after a position, leave out one's own items, bounded pages.
        expect(
          (await repos.liveRelay.listItems(ids[0]!, { instanceIds: ["i1"] }, 10)).map((i) => i.id),
        ).toEqual(ids.slice(1));
        expect(
          (
            await repos.liveRelay.listItems(
              0,
              { instanceIds: ["i1", "i2"], exceptOrigin: "brain-a" },
              10,
            )
          ).map((item) => item.payload),
        ).toEqual([line("two")]);
        expect(await repos.liveRelay.listItems(0, { instanceIds: ["i1", "i2"] }, 2)).toHaveLength(
          2,
        );
        expect(await repos.liveRelay.listItems(0, { instanceIds: [] }, 10)).toEqual([]);
        // Pruning drops items older than the bound, and ids keep growing after it.
        expect(await repos.liveRelay.prune(time(2))).toBe(2);
        expect(
          (await repos.liveRelay.listItems(0, { instanceIds: ["i1", "i2"] }, 10)).map((i) => i.at),
        ).toEqual([time(2), time(3)]);
        await repos.liveRelay.append([
          { instanceId: "i1", kind: "log", origin: "brain-a", payload: line("later"), at: time(4) },
        ]);
        const after = await repos.liveRelay.listItems(ids[1]!, { instanceIds: ["i1"] }, 10);
        expect(after.map((item) => item.payload)).toEqual([{ cpu: 0.5 }, line("later")]);
      });
    });

    describe("validation", () => {
      it("refuses malformed input at the boundary with VALIDATION_FAILED", async () => {
        await template();
        const cases: Promise<unknown>[] = [
          repos.nodes.create(
            newNode("n1", { capacity: { memoryMb: -1, cpu: 1, diskMb: 1 } }),
            "h",
            time(0),
          ),
          repos.nodes.create(newNode("n2", { portRange: { from: 2000, to: 1000 } }), "h2", time(0)),
          repos.nodes.create(newNode("x".repeat(200)), "h3", time(0)),
          repos.nodes.reserve("n1", "i1", { memoryMb: 1, cpu: 0, diskMb: 0 }, [70000], time(0)),
          repos.nodes.reserve("n1", "i1", { memoryMb: 1, cpu: 0, diskMb: 0 }, [80, 80], time(0)),
          repos.instances.create(newInstance("i1", { state: "NOPE" as never }), time(0)),
          repos.instances.create(newInstance("i1"), new Date(Number.NaN)),
          repos.events.listAfter(-1, 10),
          repos.leases.acquire("l", "h", 0, time(0)),
          repos.commands.claimDue("n1", { now: time(0), limit: 0, redeliverAt: time(1) }),
        ];
        for (const outcome of await settle(cases)) {
          expect(outcome, String(outcome)).toMatchObject({ code: "VALIDATION_FAILED" });
        }
      });
    });
  });
}

// Fixtures: one-line builders for the suite's records.
const T0 = Date.parse("2026-03-01T00:00:00.000Z");

/** A fixed instant `seconds` after the suite's epoch. */
function time(seconds: number): Date {
  return new Date(T0 + Math.round(seconds * 1000));
}

const SYSTEM: Actor = { kind: "system", id: "conformance" };

function definition(name: string, overrides: Partial<TemplateDefinition> = {}): TemplateDefinition {
  return {
    name,
    layers: [name],
    variables: { GREETING: { type: "string", default: "hello" } },
    runtime: { process: { command: ["node", "server.js"] } },
    ports: [{ name: "game", protocol: "tcp" }],
    resources: { memoryMb: 256, cpu: 0.5, diskMb: 100 },
    readiness: { log: "listening on", timeoutSeconds: 30 },
    stop: { input: null, signal: "SIGTERM", timeoutSeconds: 10 },
    restart: { policy: "on-failure", maxRestarts: 3, windowSeconds: 300 },
    ...overrides,
  };
}

function newNode(id: string, overrides: Partial<NewNode> = {}): NewNode {
  return {
    id,
    name: `node ${id}`,
    labels: { zone: "a" },
    capacity: { memoryMb: 4096, cpu: 4, diskMb: 10_000 },
    overcommit: 1,
    portRange: { from: 30000, to: 30999 },
    reservedPorts: [],
    runtimes: ["process"],
    agentVersion: "1.0.0",
    ...overrides,
  };
}

function newInstance(id: string, overrides: Partial<NewInstance> = {}): NewInstance {
  return {
    id,
    name: `server ${id}`,
    templateName: "hello",
    templateVersion: 1,
    desiredState: "running",
    state: "REQUESTED",
    nodeId: null,
    epoch: 0,
    ports: {},
    resources: { memoryMb: 256, cpu: 0.5, diskMb: 100 },
    variables: { GREETING: "hi" },
    owner: null,
    ...overrides,
  };
}

/** Awaits a promise expected to fail with `code`, and returns the error. */
async function expectError(promise: Promise<unknown>, code: ErrorCode): Promise<OrchestratorError> {
  const error = await promise.then(
    (value) => new Error(`expected ${code}, but it succeeded with ${JSON.stringify(value)}`),
    (reason: unknown) => reason,
  );
  expect(OrchestratorError.hasCode(error, code), `expected ${code}, got: ${String(error)}`).toBe(
    true,
  );
  return error as OrchestratorError;
}

/** Every promise's rejection reason (or its value, when it did not reject). */
async function settle(promises: readonly Promise<unknown>[]): Promise<unknown[]> {
  const outcomes = await Promise.allSettled(promises);
  return outcomes.map((outcome) =>
    outcome.status === "rejected" ? outcome.reason : { fulfilled: outcome.value },
  );
}
