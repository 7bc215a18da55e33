/**
 * The instance manager with the real process runtime and folder storage:
 * at-most-once commands, stale epochs, restart policy with the crash-loop
 * guard, and the reports it journals.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentCommand, PreparePayload, TemplateDefinition } from "@orchestrator/core";
import { TemplateCache } from "@orchestrator/core/cache";
import { ProcessRuntime } from "@orchestrator/runtime-process";
import { FolderTemplateStorage } from "@orchestrator/storage-fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InstanceManager } from "../src/instances/instance-manager.js";
import { CommandLedger } from "../src/state/command-ledger.js";
import { InstanceRecords } from "../src/state/instance-records.js";
import { ReportJournal } from "../src/state/report-journal.js";

let dir: string;
let runtime: ProcessRuntime;
let cache: TemplateCache;
let journal: ReportJournal;
let manager: InstanceManager;

const quiet = { info() {}, warn() {}, error() {} };

function definition(script: string, restart: TemplateDefinition["restart"]): TemplateDefinition {
  return {
    name: "t",
    layers: [script],
    variables: {},
    runtime: { process: { command: ["sh", "server.sh"] } },
    ports: [],
    resources: { memoryMb: 32, cpu: 0.1, diskMb: 10 },
    readiness: { log: "ready", timeoutSeconds: 5 },
    stop: { input: null, signal: "SIGTERM", timeoutSeconds: 2 },
    restart,
  };
}

function prepare(
  id: string,
  epoch: number,
  layer: string,
  restart: TemplateDefinition["restart"],
  commandId = `cmd_p_${id}_${epoch}`,
): AgentCommand {
  const payload: PreparePayload = {
    instanceName: id,
    template: { name: "t", version: 1, definition: definition(layer, restart) },
    variables: {},
    ports: {},
    resources: { memoryMb: 32, cpu: 0.1, diskMb: 10 },
    runtime: "process",
  };
  return { id: commandId, instanceId: id, type: "prepare", epoch, payload };
}

const command = (
  id: string,
  instanceId: string,
  type: AgentCommand["type"],
  epoch = 1,
): AgentCommand => ({
  id,
  instanceId,
  type,
  epoch,
  payload: {},
});

async function waitFor(what: string, probe: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const triggers = (instanceId: string) =>
  journal
    .pending(1000)
    .filter((report) => report.instanceId === instanceId)
    .map((report) =>
      report.failure ? `${report.trigger}:${report.failure.kind}` : report.trigger,
    );

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "orch-manager-"));
  const layers = join(dir, "storage", "layers");
  await mkdir(join(layers, "steady"), { recursive: true });
  await writeFile(
    join(layers, "steady", "server.sh"),
    "echo ready\nwhile true; do sleep 1; done\n",
  );
  await mkdir(join(layers, "crashy"), { recursive: true });
  await writeFile(join(layers, "crashy", "server.sh"), "echo ready\nsleep 0.2\nexit 3\n");
  runtime = new ProcessRuntime({
    stateDirectory: join(dir, "runtime"),
    instanceRoots: [join(dir, "instances")],
  });
  cache = new TemplateCache({
    storage: new FolderTemplateStorage({ root: join(dir, "storage") }),
    dir: join(dir, "cache"),
  });
  await cache.init();
  journal = await ReportJournal.open(join(dir, "reports.jsonl"));
  manager = new InstanceManager({
    nodeId: "node_1",
    runtimes: new Map([["process", runtime]]),
    cache,
    journal,
    ledger: await CommandLedger.open(join(dir, "commands.jsonl")),
    records: await InstanceRecords.open(join(dir, "instances.json")),
    instancesDir: join(dir, "instances"),
    clock: { now: () => new Date(), monotonicMs: () => performance.now() },
    log: quiet,
    onReport: () => undefined,
  });
  await manager.recover();
});

afterEach(async () => {
  for (const info of await runtime.list()) await runtime.remove(info.instanceId);
  await manager.close();
  await cache.destroy();
  await runtime.destroy?.();
  await rm(dir, { recursive: true, force: true });
});

describe("InstanceManager", () => {
  const never = { policy: "never", maxRestarts: 0, windowSeconds: 60 } as const;

  it("runs a command id at most once, answering repeats with the first result", async () => {
    const first = prepare("inst_a", 1, "steady", never);
    const [one, two] = await Promise.all([manager.execute(first), manager.execute(first)]);
    expect(one).toEqual({ commandId: first.id, ok: true });
    expect(two).toEqual(one);
    expect(await manager.execute(first)).toEqual(one);
    expect(triggers("inst_a")).toEqual(["prepare", "prepared"]);
    const start = command("cmd_s", "inst_a", "start");
    expect((await manager.execute(start)).ok).toBe(true);
    expect((await manager.execute(start)).ok).toBe(true);
    expect(triggers("inst_a")).toEqual(["prepare", "prepared", "start", "ready"]);
    expect((await runtime.list()).filter((info) => info.status === "running")).toHaveLength(1);
  });

  it("refuses a command from an older placement", async () => {
    await manager.execute(prepare("inst_b", 2, "steady", never));
    const stale = await manager.execute(command("cmd_old", "inst_b", "start", 1));
    expect(stale.ok).toBe(false);
    expect(stale.message).toMatch(/stale epoch/);
    expect(triggers("inst_b")).toEqual(["prepare", "prepared"]);
  });

  it("refuses an instance id that is not a plain name", async () => {
    const result = await manager.execute(prepare("../escape", 1, "steady", never));
    expect(result).toMatchObject({ ok: false, message: "invalid instance id" });
  });

  it("reports a crash and gives up after the crash-loop limit", async () => {
    const policy = { policy: "on-failure", maxRestarts: 1, windowSeconds: 60 } as const;
    await manager.execute(prepare("inst_c", 1, "crashy", policy));
    await manager.execute(command("cmd_c", "inst_c", "start"));
    await waitFor("crash loop", () => triggers("inst_c").includes("fail:crash-loop"));
    expect(triggers("inst_c")).toEqual([
      "prepare",
      "prepared",
      "start",
      "ready",
      "fail:crashed",
      "start",
      "ready",
      "fail:crash-loop",
    ]);
    const seqs = journal
      .pending(1000)
      .filter((r) => r.instanceId === "inst_c")
      .map((r) => r.seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("fails a prepare whose layer does not exist, leaving no instance directory", async () => {
    const result = await manager.execute(prepare("inst_d", 1, "missing-layer", never));
    expect(result.ok).toBe(false);
    expect(triggers("inst_d")).toEqual(["prepare", "fail:prepare-failed"]);
    expect(manager.inventory().find((item) => item.instanceId === "inst_d")?.state).toBe("FAILED");
    await expect(stat(join(dir, "instances", "inst_d"))).rejects.toThrow(/ENOENT/);
  });

  it("destroys: stops the server, removes everything, reports once", async () => {
    await manager.execute(prepare("inst_e", 1, "steady", never));
    await manager.execute(command("cmd_e1", "inst_e", "start"));
    await manager.execute(command("cmd_e2", "inst_e", "destroy"));
    expect(triggers("inst_e").at(-1)).toBe("destroyed");
    expect(await runtime.inspect("inst_e")).toBeNull();
    expect(manager.inventory().some((item) => item.instanceId === "inst_e")).toBe(false);
  });
});
