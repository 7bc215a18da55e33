/**
 * Commands interrupted by an agent crash: the state a SIGKILL leaves (a
 * command begun in the ledger without a result, the instance record and its
 * reports, a half-built merge staging folder) is set up, a new manager is
 * opened on the same state files — the restarted agent — and the Brain's
 * redelivery of the same command id is executed. The real SIGKILL is in
 * test/resilience/agent-faults.test.ts.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
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
let ledger: CommandLedger;
let manager: InstanceManager;
const messages: string[] = [];

const log = {
  info: (_details: object, message: string) => void messages.push(message),
  warn() {},
  error() {},
};

const definition: TemplateDefinition = {
  name: "t",
  layers: ["steady"],
  variables: {},
  runtime: { process: { command: ["sh", "server.sh"] } },
  ports: [],
  files: { substitute: ["**/*.txt"] },
  resources: { memoryMb: 32, cpu: 0.1, diskMb: 10 },
  readiness: { log: "ready", timeoutSeconds: 5 },
  stop: { input: null, signal: "SIGTERM", timeoutSeconds: 2 },
  restart: { policy: "never", maxRestarts: 0, windowSeconds: 60 },
};

const prepare = (id: string, commandId: string): AgentCommand => {
  const payload: PreparePayload = {
    instanceName: id,
    template: { name: "t", version: 1, definition },
    variables: {},
    ports: {},
    resources: { memoryMb: 32, cpu: 0.1, diskMb: 10 },
    runtime: "process",
  };
  return { id: commandId, instanceId: id, type: "prepare", epoch: 1, payload };
};

const command = (id: string, instanceId: string, type: AgentCommand["type"]): AgentCommand => ({
  id,
  instanceId,
  type,
  epoch: 1,
  payload: type === "input" ? { line: "say hello" } : {},
});

const triggers = (instanceId: string) =>
  journal
    .pending(1000)
    .filter((report) => report.instanceId === instanceId)
    .map((report) => report.trigger);

/** Opens the agent's state files and a manager over them, as an agent start does. */
async function openAgent(now: () => number = Date.now): Promise<void> {
  journal = await ReportJournal.open(join(dir, "reports.jsonl"));
  ledger = await CommandLedger.open(join(dir, "commands.jsonl"), 10_000, now);
  manager = new InstanceManager({
    nodeId: "node_1",
    runtimes: new Map([["process", runtime]]),
    cache,
    journal,
    ledger,
    records: await InstanceRecords.open(join(dir, "instances.json")),
    instancesDir: join(dir, "instances"),
    clock: { now: () => new Date(), monotonicMs: () => performance.now() },
    log,
    onReport: () => undefined,
  });
  await manager.recover();
}

/** The agent process dies: nothing more is written by this manager. */
async function restartAgent(now?: () => number): Promise<void> {
  await manager.close();
  await openAgent(now);
}

beforeEach(async () => {
  messages.length = 0;
  dir = await mkdtemp(join(tmpdir(), "orch-interrupted-"));
  const layer = join(dir, "storage", "layers", "steady");
  await mkdir(layer, { recursive: true });
  await writeFile(
    join(layer, "server.sh"),
    'echo ready\nwhile read line; do echo "got $line"; done\nwhile true; do sleep 1; done\n',
  );
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a template placeholder
  await writeFile(join(layer, "name.txt"), "${INSTANCE_NAME}\n");
  runtime = new ProcessRuntime({
    stateDirectory: join(dir, "runtime"),
    instanceRoots: [join(dir, "instances")],
  });
  cache = new TemplateCache({
    storage: new FolderTemplateStorage({ root: join(dir, "storage") }),
    dir: join(dir, "cache"),
  });
  await cache.init();
  await openAgent();
});

afterEach(async () => {
  for (const info of await runtime.list()) await runtime.remove(info.instanceId);
  await manager.close();
  await cache.destroy();
  await runtime.destroy?.();
  await rm(dir, { recursive: true, force: true });
});

describe("commands interrupted by an agent crash", () => {
  it("resumes an interrupted prepare when it is delivered again: leftovers removed, PREPARING not reported twice, one result", async () => {
    const first = prepare("inst_p", "cmd_prepare");
    // What a SIGKILL during the merge leaves: the command begun, PREPARING
    // journaled, the record in PREPARING, a half-built staging folder.
    await ledger.begin(first);
    const records = await InstanceRecords.open(join(dir, "instances.json"));
    await records.put({
      instanceId: "inst_p",
      instanceName: "inst_p",
      epoch: 1,
      state: "PREPARING",
      runtime: "process",
      templateName: "t",
      templateVersion: 1,
      restart: definition.restart,
      readiness: definition.readiness,
      stop: definition.stop,
      restarts: [],
    });
    await journal.append({
      instanceId: "inst_p",
      epoch: 1,
      trigger: "prepare",
      to: "PREPARING",
      reason: "preparing t@1",
      at: new Date().toISOString(),
    });
    const staging = join(dir, "instances", ".inst_p.orch-staging-abc123");
    await mkdir(staging, { recursive: true });
    await writeFile(join(staging, "server.sh"), "echo half");

    await restartAgent();
    expect(await readdir(join(dir, "instances"))).toEqual([]);
    expect(manager.inventory()).toEqual([
      { instanceId: "inst_p", state: "PREPARING", seq: 1, epoch: 1 },
    ]);
    expect(messages.some((m) => m.includes("resumes when the Brain delivers it again"))).toBe(true);

    // The Brain never got an answer: it delivers the same id again.
    expect(await manager.execute(first)).toEqual({ commandId: "cmd_prepare", ok: true });
    expect(triggers("inst_p")).toEqual(["prepare", "prepared"]);
    expect(await readFile(join(dir, "instances", "inst_p", "name.txt"), "utf8")).toBe("inst_p\n");
    expect((await runtime.inspect("inst_p"))?.status).toBe("created");
    // Finished now: a further delivery is a duplicate, after another restart too.
    await restartAgent();
    expect(await manager.execute(first)).toEqual({ commandId: "cmd_prepare", ok: true });
    expect(triggers("inst_p")).toEqual(["prepare", "prepared"]);
    expect(ledger.unfinished()).toEqual([]);
  });

  it("never sends an interrupted console input twice: answered 'interrupted', for good", async () => {
    await manager.execute(prepare("inst_i", "cmd_pi"));
    await manager.execute(command("cmd_si", "inst_i", "start"));
    const input = command("cmd_input", "inst_i", "input");
    await ledger.begin(input); // crashed somewhere around the write to stdin
    await restartAgent();
    const answer = await manager.execute(input);
    expect(answer).toMatchObject({ commandId: "cmd_input", ok: false });
    expect(answer.message).toMatch(/interrupted by an agent restart and is not repeated/);
    await restartAgent();
    expect(await manager.execute(input)).toEqual(answer);
    const lines: string[] = [];
    for await (const line of await runtime.logs("inst_i", { tail: 100 })) lines.push(line.line);
    expect(lines).toContain("ready");
    expect(lines).not.toContain("got say hello");
  });

  it("does not repeat a restart whose new run began before the crash; redoes one interrupted before it", async () => {
    await manager.execute(prepare("inst_r", "cmd_pr"));
    await manager.execute(command("cmd_sr", "inst_r", "start"));
    const before = (await runtime.inspect("inst_r"))!;

    // Interrupted before anything happened (began after the server started): redone.
    const early = command("cmd_restart_1", "inst_r", "restart");
    await ledger.begin(early);
    await restartAgent();
    expect(await manager.execute(early)).toEqual({ commandId: "cmd_restart_1", ok: true });
    const restarted = (await runtime.inspect("inst_r"))!;
    expect(restarted.status).toBe("running");
    expect(restarted.startedAt!.getTime()).toBeGreaterThan(before.startedAt!.getTime());

    // Interrupted after the new run began (began before the server's start): not repeated.
    const late = command("cmd_restart_2", "inst_r", "restart");
    await restartAgent(() => restarted.startedAt!.getTime() - 1_000);
    await ledger.begin(late);
    await restartAgent();
    expect(await manager.execute(late)).toEqual({
      commandId: "cmd_restart_2",
      ok: true,
      message: "restarted before the agent restart",
    });
    expect((await runtime.inspect("inst_r"))!.startedAt).toEqual(restarted.startedAt);
  });
});
