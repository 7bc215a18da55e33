/**
 * An agent (re)started while its runtime is unavailable (a stopped Docker
 * engine): it stays up, fails no instance for it, answers commands with a
 * retryable error, and recovers the instances once the runtime answers. The
 * runtime here is the real process runtime behind a switch that makes every
 * call fail as an unreachable engine does.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type AgentCommand,
  type PreparePayload,
  type Runtime,
  type TemplateDefinition,
  UnavailableError,
} from "@orchestrator/core";
import { TemplateCache } from "@orchestrator/core/cache";
import { ProcessRuntime } from "@orchestrator/runtime-process";
import { FolderTemplateStorage } from "@orchestrator/storage-fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InstanceManager } from "../src/instances/instance-manager.js";
import { CommandLedger } from "../src/state/command-ledger.js";
import { InstanceRecords } from "../src/state/instance-records.js";
import { ReportJournal } from "../src/state/report-journal.js";

let dir: string;
let real: ProcessRuntime;
let down = false;
let runtime: Runtime;
let cache: TemplateCache;
let journal: ReportJournal;
let manager: InstanceManager;

/** The real runtime, or an unreachable engine while `down`. */
function switchable(target: ProcessRuntime): Runtime {
  return new Proxy(target, {
    get(object, key, receiver) {
      const value = Reflect.get(object, key, receiver);
      if (typeof value !== "function" || key === "constructor") return value;
      return (...args: unknown[]) => {
        if (down) return Promise.reject(new UnavailableError("the engine is unreachable (ENOENT)"));
        return (value as (...a: unknown[]) => unknown).apply(object, args);
      };
    },
  }) as Runtime;
}

const definition: TemplateDefinition = {
  name: "t",
  layers: ["steady"],
  variables: {},
  runtime: { process: { command: ["sh", "server.sh"] } },
  ports: [],
  resources: { memoryMb: 32, cpu: 0.1, diskMb: 10 },
  readiness: { log: "ready", timeoutSeconds: 5 },
  stop: { input: null, signal: "SIGTERM", timeoutSeconds: 2 },
  restart: { policy: "never", maxRestarts: 0, windowSeconds: 60 },
};

const prepare = (id: string): AgentCommand => ({
  id: `cmd_p_${id}`,
  instanceId: id,
  type: "prepare",
  epoch: 1,
  payload: {
    instanceName: id,
    template: { name: "t", version: 1, definition },
    variables: {},
    ports: {},
    resources: { memoryMb: 32, cpu: 0.1, diskMb: 10 },
    runtime: "process",
  } satisfies PreparePayload,
});

const command = (id: string, instanceId: string, type: AgentCommand["type"]): AgentCommand => ({
  id,
  instanceId,
  type,
  epoch: 1,
  payload: {},
});

const triggers = (instanceId: string) =>
  journal
    .pending(1000)
    .filter((report) => report.instanceId === instanceId)
    .map((report) => report.trigger);

async function openAgent(): Promise<void> {
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
    log: { info() {}, warn() {}, error() {} },
    onReport: () => undefined,
  });
  await manager.recover();
}

beforeEach(async () => {
  down = false;
  dir = await mkdtemp(join(tmpdir(), "orch-unavailable-"));
  const layer = join(dir, "storage", "layers", "steady");
  await mkdir(layer, { recursive: true });
  await writeFile(join(layer, "server.sh"), "echo ready\nwhile true; do sleep 1; done\n");
  real = new ProcessRuntime({
    stateDirectory: join(dir, "runtime"),
    instanceRoots: [join(dir, "instances")],
  });
  runtime = switchable(real);
  cache = new TemplateCache({
    storage: new FolderTemplateStorage({ root: join(dir, "storage") }),
    dir: join(dir, "cache"),
  });
  await cache.init();
  await openAgent();
});

afterEach(async () => {
  down = false;
  await manager.close();
  for (const info of await real.list()) await real.remove(info.instanceId);
  await cache.destroy();
  await real.destroy?.();
  await rm(dir, { recursive: true, force: true });
});

describe("agent started while its runtime is unavailable", () => {
  it("fails nothing, answers commands with a retryable error, recovers and re-attaches once it answers", async () => {
    await manager.execute(prepare("inst_u"));
    await manager.execute(command("cmd_s1", "inst_u", "start"));
    const pid = (await real.inspect("inst_u"))!.handle;
    expect(triggers("inst_u")).toEqual(["prepare", "prepared", "start", "ready"]);

    // The agent restarts while the engine is down: start does not throw.
    await manager.close();
    down = true;
    await openAgent();
    expect(manager.inventory()).toEqual([
      { instanceId: "inst_u", state: "RUNNING", seq: 4, epoch: 1 },
    ]);
    const refused = await manager.execute(command("cmd_stop_1", "inst_u", "stop"));
    expect(refused.ok).toBe(false);
    expect(refused.message).toMatch(/process runtime is unavailable .* retry when it is back/);
    expect(triggers("inst_u")).toEqual(["prepare", "prepared", "start", "ready"]); // nothing failed

    // Back: the next command recovers first (same server, re-attached), then runs.
    down = false;
    const stopped = await manager.execute(command("cmd_stop_2", "inst_u", "stop"));
    expect(stopped).toEqual({ commandId: "cmd_stop_2", ok: true });
    expect(triggers("inst_u").slice(-2)).toEqual(["stop", "stopped"]);
    expect((await real.inspect("inst_u"))!.handle).toBe(pid);
  });
});
