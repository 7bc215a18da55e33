/**
 * Runs the Brain's commands for the instances on this node and reports every
 * lifecycle change. Commands for one instance run in order; different
 * instances run concurrently. Each command id runs at most once (the ledger
 * answers repeats with the first result; stale placement epochs are refused).
 * After an agent restart, running servers are found again through the
 * runtime's labels and re-attached, never restarted; a command the crash
 * interrupted is resumed when the Brain delivers it again (see
 * `CommandLedger` for which commands are resumed and how).
 */
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  type AgentCommand,
  type Clock,
  type CommandResultReport,
  decideRestart,
  type FailureReason,
  type InstanceState,
  type InstanceTrigger,
  type InventoryItem,
  OrchestratorError,
  type PreparePayload,
  ReadinessError,
  type Runtime,
  type RuntimeExit,
  type RuntimeKind,
  readinessCheckFromDefinition,
  waitUntilReady,
} from "@orchestrator/core";
import type { TemplateCache } from "@orchestrator/core/cache";
import type { CommandLedger, CommandResult } from "../state/command-ledger.js";
import type { InstanceRecord, InstanceRecords } from "../state/instance-records.js";
import type { ReportJournal } from "../state/report-journal.js";
import { LABELS, prepareInstance } from "./prepare-instance.js";

/** States in which the runtime must have the instance (missing: it was lost). */
const ACTIVE: readonly InstanceState[] = ["STARTING", "RUNNING", "STOPPING", "PREPARED"];
/** How often an unavailable runtime is tried again for recovery. */
const RECOVERY_RETRY_MS = 2_000;

/** Ids become folder names: nothing but these characters. */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export interface AgentLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface InstanceManagerOptions {
  nodeId: string;
  runtimes: ReadonlyMap<RuntimeKind, Runtime>;
  cache: TemplateCache;
  journal: ReportJournal;
  ledger: CommandLedger;
  records: InstanceRecords;
  /** Instance directories live here (one folder per instance id). */
  instancesDir: string;
  clock: Clock;
  log: AgentLogger;
  /** Called after every report: the sync loop sends it now. */
  onReport: () => void;
}

export class InstanceManager {
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly inFlight = new Map<string, Promise<CommandResultReport>>();
  /** Runtime instances of ours that the agent has no record of (reported; the Brain decides). */
  private readonly strays = new Map<string, InventoryItem>();
  private readonly unsubscribers: (() => void)[] = [];
  /** Runtimes whose instances are not recovered yet (unavailable at start). */
  private readonly unrecovered = new Set<RuntimeKind>();
  private readonly recovering = new Map<RuntimeKind, Promise<boolean>>();
  /** Runtimes whose exits are watched. */
  private readonly watching = new Set<RuntimeKind>();
  private recoveryTimer: NodeJS.Timeout | null = null;
  private stopping = false;

  constructor(private readonly options: InstanceManagerOptions) {}

  directoryOf(instanceId: string): string {
    return join(this.options.instancesDir, instanceId);
  }

  /**
   * Finds every instance again after a (re)start and re-attaches exit watching.
   * A runtime that is unavailable (a stopped Docker engine) does not stop the
   * agent: its instances are left as recorded (never failed for it), it is
   * recovered as soon as it answers again (retried in the background and
   * before each command that needs it), and its commands fail meanwhile with
   * a retryable error.
   */
  async recover(): Promise<void> {
    await this.removeMergeLeftovers();
    const interrupted = new Map(
      this.options.ledger.unfinished().map((command) => [command.instanceId, command]),
    );
    for (const record of this.options.records.all()) {
      const command = interrupted.get(record.instanceId);
      if (command) {
        // The Brain never got an answer: it delivers the command again and it is resumed then.
        this.options.log.info(
          { instanceId: record.instanceId, commandId: command.id, type: command.type },
          "a command was interrupted by the agent's restart; it resumes when the Brain delivers it again",
        );
      }
      if (!this.options.runtimes.has(record.runtime) && ACTIVE.includes(record.state)) {
        // Its runtime is not configured on this node any more.
        void this.serial(record.instanceId, () =>
          this.report(record, "fail", "FAILED", `no ${record.runtime} runtime on this node`, {
            failure: { kind: "crashed", message: `no ${record.runtime} runtime on this node` },
          }),
        );
      }
    }
    for (const kind of this.options.runtimes.keys()) {
      if (!(await this.recoverRuntime(kind))) this.unrecovered.add(kind);
    }
    if (this.unrecovered.size > 0) this.scheduleRecovery();
  }

  /** True once `kind` is recovered; false while it is unavailable. Other errors are thrown. */
  private recoverRuntime(kind: RuntimeKind): Promise<boolean> {
    let running = this.recovering.get(kind);
    if (!running) {
      running = this.recoverRuntimeOnce(kind).finally(() => this.recovering.delete(kind));
      this.recovering.set(kind, running);
    }
    return running;
  }

  private async recoverRuntimeOnce(kind: RuntimeKind): Promise<boolean> {
    const runtime = this.options.runtimes.get(kind)!;
    let listed: Awaited<ReturnType<Runtime["list"]>>;
    try {
      if (!this.watching.has(kind)) {
        this.unsubscribers.push(await runtime.onExit((exit) => this.onExit(runtime, exit)));
        this.watching.add(kind);
      }
      listed = await runtime.list({ [LABELS.node]: this.options.nodeId });
    } catch (error) {
      if (!OrchestratorError.hasCode(error, "UNAVAILABLE")) throw error;
      if (!this.unrecovered.has(kind)) {
        this.options.log.error(
          { runtime: kind, err: messageOf(error) },
          "runtime unavailable: its instances are recovered when it answers again",
        );
      }
      return false;
    }
    const seen = new Set<string>();
    for (const info of listed) {
      seen.add(info.instanceId);
      const record = this.options.records.get(info.instanceId);
      if (!record) {
        this.strays.set(info.instanceId, {
          instanceId: info.instanceId,
          state:
            info.status === "running"
              ? "RUNNING"
              : info.status === "created"
                ? "PREPARED"
                : "STOPPED",
          seq: this.options.journal.lastSeq(info.instanceId),
          epoch: Number(info.labels[LABELS.epoch] ?? 0),
        });
        continue;
      }
      if (record.runtime !== kind) continue;
      if (info.status === "running" && record.state === "STARTING") {
        // Killed mid-start: the server runs; finish the readiness check.
        void this.serial(record.instanceId, () =>
          this.awaitReady(runtime, record, info.startedAt ?? undefined),
        );
      } else if (info.status === "running" && record.state === "STOPPING") {
        void this.serial(record.instanceId, () => this.stopRunning(runtime, record));
      } else if (
        info.status === "exited" &&
        (record.state === "RUNNING" || record.state === "STARTING")
      ) {
        const exit = {
          instanceId: info.instanceId,
          exitCode: info.exitCode,
          signal: info.signal,
          requested: false,
          at: info.finishedAt ?? this.options.clock.now(),
        };
        void this.serial(record.instanceId, () => this.afterCrash(runtime, record, exit));
      }
    }
    for (const record of this.options.records.all()) {
      if (record.runtime !== kind || seen.has(record.instanceId)) continue;
      if (ACTIVE.includes(record.state)) {
        // The runtime lost it (host reboot, container removed by hand).
        void this.serial(record.instanceId, () =>
          this.report(record, "fail", "FAILED", "the runtime no longer has this instance", {
            failure: { kind: "crashed", message: "the runtime no longer has this instance" },
          }),
        );
      }
    }
    if (this.unrecovered.delete(kind))
      this.options.log.info({ runtime: kind }, "runtime available again: instances recovered");
    return true;
  }

  /** Retries the recovery of unavailable runtimes in the background until each answers. */
  private scheduleRecovery(): void {
    if (this.recoveryTimer || this.stopping) return;
    this.recoveryTimer = setTimeout(async () => {
      this.recoveryTimer = null;
      for (const kind of [...this.unrecovered]) {
        await this.recoverRuntime(kind).catch((error: unknown) =>
          this.options.log.error({ runtime: kind, err: messageOf(error) }, "recovery failed"),
        );
      }
      if (this.unrecovered.size > 0) this.scheduleRecovery();
    }, RECOVERY_RETRY_MS);
    this.recoveryTimer.unref?.();
  }

  /**
   * Removes what a merge killed half-way left beside the instance directories
   * (staging folders: hidden names, which no instance id can have). Nothing
   * merges while the agent recovers, so every hidden entry is a leftover.
   */
  private async removeMergeLeftovers(): Promise<void> {
    const names = await readdir(this.options.instancesDir).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [] as string[];
      throw error;
    });
    for (const name of names) {
      if (!name.startsWith(".")) continue;
      await rm(join(this.options.instancesDir, name), { recursive: true, force: true });
      this.options.log.info({ entry: name }, "removed what an interrupted prepare left behind");
    }
  }

  /** The full inventory for the next sync. */
  inventory(): InventoryItem[] {
    const items = this.options.records.all().map((record) => ({
      instanceId: record.instanceId,
      state: record.state,
      seq: this.options.journal.lastSeq(record.instanceId),
      epoch: record.epoch,
    }));
    return [
      ...items,
      ...[...this.strays.values()].filter((stray) => !this.options.records.get(stray.instanceId)),
    ];
  }

  /**
   * Runs a command (in the background of the caller's choosing): at most once
   * per id; a repeat while it runs shares the first run's result.
   */
  execute(command: AgentCommand): Promise<CommandResultReport> {
    const running = this.inFlight.get(command.id);
    if (running) return running;
    const promise = this.executeOnce(command).finally(() => this.inFlight.delete(command.id));
    this.inFlight.set(command.id, promise);
    return promise;
  }

  async close(): Promise<void> {
    this.stopping = true;
    if (this.recoveryTimer) clearTimeout(this.recoveryTimer);
    this.recoveryTimer = null;
    for (const unsubscribe of this.unsubscribers.splice(0)) unsubscribe();
    await Promise.allSettled([...this.queues.values()]);
  }

  private async executeOnce(command: AgentCommand): Promise<CommandResultReport> {
    const respond = (result: CommandResult): CommandResultReport => ({
      commandId: command.id,
      ok: result.ok,
      ...(result.message === undefined ? {} : { message: result.message }),
    });
    if (!SAFE_ID.test(command.instanceId))
      return respond({ ok: false, message: "invalid instance id" });
    const admission = this.options.ledger.admit(command);
    if (!admission.run) {
      // An interrupted command that is not repeated gets its answer for good.
      if (admission.reason === "interrupted")
        await this.options.ledger.record(command, admission.result);
      return respond(admission.result);
    }
    this.options.ledger.observeEpoch(command.instanceId, command.epoch);
    const kind =
      command.type === "prepare"
        ? (command.payload as PreparePayload).runtime
        : this.options.records.get(command.instanceId)?.runtime;
    if (kind !== undefined && this.unrecovered.has(kind) && !(await this.recoverRuntime(kind))) {
      // Answered without running it (nothing begun): the user retries once the runtime is back.
      return respond({
        ok: false,
        message: `the ${kind} runtime is unavailable (its instances are not recovered yet); retry when it is back`,
      });
    }
    await this.options.ledger.begin(command);
    const resumedAt = admission.resumed ? new Date(admission.resumed.begunAt) : undefined;
    const result = await this.serial(command.instanceId, () => this.run(command, resumedAt)).catch(
      (error: unknown): CommandResult => ({ ok: false, message: messageOf(error) }),
    );
    await this.options.ledger.record(command, result);
    return respond(result);
  }

  /** `resumedAt`: the command began before an agent restart, at that time. */
  private async run(command: AgentCommand, resumedAt?: Date): Promise<CommandResult> {
    const record = this.options.records.get(command.instanceId);
    if (command.type === "prepare") return this.prepare(command, command.payload as PreparePayload);
    if (command.type === "destroy") return this.destroy(command, record);
    if (!record) return { ok: false, message: "instance is not prepared on this node" };
    if (record.epoch !== command.epoch)
      return { ok: false, message: `epoch ${command.epoch} is not the current placement` };
    const runtime = this.runtimeOf(record);
    switch (command.type) {
      case "start":
        return this.start(runtime, record);
      case "stop":
        return this.stopRunning(runtime, record);
      case "restart": {
        if (resumedAt) {
          // Interrupted after the new run began: the restart happened, do not repeat it.
          const info = await runtime.inspect(record.instanceId);
          if (info?.status === "running" && info.startedAt && info.startedAt >= resumedAt)
            return { ok: true, message: "restarted before the agent restart" };
        }
        const stopped = await this.stopRunning(runtime, record);
        if (!stopped.ok) return stopped;
        return this.start(runtime, this.options.records.get(record.instanceId)!);
      }
      case "kill": {
        const info = await runtime.inspect(record.instanceId);
        if (info?.status !== "running") return { ok: true, message: "not running" };
        await runtime.kill(record.instanceId);
        await this.report(record, "stopped", "STOPPED", "killed");
        return { ok: true };
      }
      case "input": {
        const line = (command.payload as { line?: unknown }).line;
        if (typeof line !== "string") return { ok: false, message: "input needs a line" };
        await runtime.sendInput(record.instanceId, line);
        return { ok: true };
      }
      default:
        return { ok: false, message: `unknown command ${command.type}` };
    }
  }

  private async prepare(command: AgentCommand, payload: PreparePayload): Promise<CommandResult> {
    const runtime = this.options.runtimes.get(payload.runtime);
    if (!runtime) return { ok: false, message: `this node has no ${payload.runtime} runtime` };
    const existing = await runtime.inspect(command.instanceId);
    if (existing?.status === "running")
      return { ok: false, message: "instance is running; stop it first" };
    this.strays.delete(command.instanceId);
    const { definition } = payload.template;
    const previous = this.options.records.get(command.instanceId);
    // A prepare interrupted by an agent crash (or a second one at the same
    // placement while the first never finished): PREPARING was reported already.
    const resuming = previous?.state === "PREPARING" && previous.epoch === command.epoch;
    const record: InstanceRecord = {
      instanceId: command.instanceId,
      instanceName: payload.instanceName,
      epoch: command.epoch,
      state: previous?.state ?? "SCHEDULED",
      runtime: payload.runtime,
      templateName: definition.name,
      templateVersion: payload.template.version,
      restart: definition.restart,
      readiness: definition.readiness,
      stop: definition.stop,
      restarts: [],
    };
    await this.options.records.put(record);
    if (!resuming) {
      await this.report(
        record,
        "prepare",
        "PREPARING",
        `preparing ${definition.name}@${payload.template.version}`,
      );
    }
    try {
      const prepared = await prepareInstance({
        nodeId: this.options.nodeId,
        instanceId: command.instanceId,
        epoch: command.epoch,
        directory: this.directoryOf(command.instanceId),
        payload,
        cache: this.options.cache,
      });
      if (existing) await runtime.remove(command.instanceId);
      await runtime.create(prepared.spec);
      await this.report(record, "prepared", "PREPARED", "instance directory ready", {
        ...(prepared.warnings.length > 0 ? { warnings: prepared.warnings } : {}),
      });
      return { ok: true };
    } catch (error) {
      const message = messageOf(error);
      this.options.log.warn({ instanceId: command.instanceId, err: error }, "prepare failed");
      await this.report(record, "fail", "FAILED", `prepare failed: ${message}`, {
        failure: { kind: "prepare-failed", message },
      });
      return { ok: false, message };
    }
  }

  private async start(runtime: Runtime, record: InstanceRecord): Promise<CommandResult> {
    const info = await runtime.inspect(record.instanceId);
    if (!info) return { ok: false, message: "instance is not prepared on this node" };
    if (info.status === "running") return { ok: true, message: "already running" };
    await this.report(record, "start", "STARTING", "starting");
    const started = await runtime.start(record.instanceId);
    return this.awaitReady(runtime, record, started.startedAt ?? undefined);
  }

  private async awaitReady(
    runtime: Runtime,
    record: InstanceRecord,
    since?: Date,
  ): Promise<CommandResult> {
    const { check, timeoutMs } = readinessCheckFromDefinition(record.readiness);
    try {
      await waitUntilReady(runtime, record.instanceId, check, {
        timeoutMs,
        ...(since ? { since } : {}),
      });
      await this.report(this.current(record), "ready", "RUNNING", "ready");
      return { ok: true };
    } catch (error) {
      if (!(error instanceof ReadinessError)) throw error;
      if (error.reason === "timeout") {
        await runtime.kill(record.instanceId).catch(() => undefined);
        const message = `not ready within ${record.readiness.timeoutSeconds} s`;
        await this.report(this.current(record), "fail", "FAILED", message, {
          failure: { kind: "start-timeout", message },
        });
        return { ok: false, message };
      }
      const exit = error.exit ?? {
        instanceId: record.instanceId,
        exitCode: null,
        signal: null,
        requested: false,
        at: this.options.clock.now(),
      };
      await this.afterCrash(runtime, this.current(record), exit);
      return { ok: false, message: error.message };
    }
  }

  private async stopRunning(runtime: Runtime, record: InstanceRecord): Promise<CommandResult> {
    const info = await runtime.inspect(record.instanceId);
    if (info?.status !== "running") return { ok: true, message: "not running" };
    if (record.state !== "STOPPING") await this.report(record, "stop", "STOPPING", "stopping");
    await runtime.stop(record.instanceId);
    await this.report(this.current(record), "stopped", "STOPPED", "stopped");
    return { ok: true };
  }

  private async destroy(
    command: AgentCommand,
    record: InstanceRecord | undefined,
  ): Promise<CommandResult> {
    for (const runtime of this.options.runtimes.values()) {
      if (await runtime.inspect(command.instanceId)) await runtime.remove(command.instanceId);
    }
    await rm(this.directoryOf(command.instanceId), { recursive: true, force: true });
    this.strays.delete(command.instanceId);
    const target = record ?? this.placeholder(command);
    await this.report(target, "destroyed", "DESTROYED", "destroyed");
    await this.options.records.delete(command.instanceId);
    return { ok: true };
  }

  /** An exit nobody asked for. */
  private onExit(runtime: Runtime, exit: RuntimeExit): void {
    if (exit.requested || this.stopping) return;
    const record = this.options.records.get(exit.instanceId);
    // STARTING exits are handled by the readiness wait of the start in progress.
    if (record?.state !== "RUNNING") return;
    void this.serial(exit.instanceId, async () => {
      const current = this.options.records.get(exit.instanceId);
      if (current?.state === "RUNNING") await this.afterCrash(runtime, current, exit);
    });
  }

  /** Reports the exit and applies the template's restart policy (with the crash-loop guard). */
  private async afterCrash(
    runtime: Runtime,
    record: InstanceRecord,
    exit: RuntimeExit,
  ): Promise<void> {
    const now = this.options.clock.now().getTime();
    const decision = decideRestart(
      record.restart,
      { exitCode: exit.exitCode, requested: false },
      record.restarts,
      now,
    );
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.exitCode ?? "unknown"}`;
    if (decision.action === "stay" && exit.exitCode === 0) {
      await this.report(record, "stopped", "STOPPED", "exited cleanly");
      return;
    }
    const failure: FailureReason =
      decision.action === "give-up"
        ? {
            kind: "crash-loop",
            message: `crashed ${decision.restarts + 1} times within ${record.restart.windowSeconds} s; not restarting`,
            exitCode: exit.exitCode,
            signal: exit.signal,
          }
        : {
            kind: "crashed",
            message: `exited with ${how}`,
            exitCode: exit.exitCode,
            signal: exit.signal,
          };
    await this.report(record, "fail", "FAILED", failure.message, { failure });
    if (decision.action !== "restart") return;
    const updated = await this.options.records.update(record.instanceId, {
      restarts: [
        ...record.restarts.filter((at) => at > now - record.restart.windowSeconds * 1000),
        now,
      ],
    });
    if (updated) await this.start(runtime, updated);
  }

  private async report(
    record: InstanceRecord,
    trigger: InstanceTrigger,
    to: InstanceState,
    reason: string,
    extra: { failure?: FailureReason; warnings?: string[] } = {},
  ): Promise<void> {
    await this.options.journal.append({
      instanceId: record.instanceId,
      epoch: record.epoch,
      trigger,
      to,
      reason,
      at: this.options.clock.now().toISOString(),
      ...extra,
    });
    if (to !== "DESTROYED") await this.options.records.update(record.instanceId, { state: to });
    this.options.onReport();
  }

  private current(record: InstanceRecord): InstanceRecord {
    return this.options.records.get(record.instanceId) ?? record;
  }

  private runtimeOf(record: InstanceRecord): Runtime {
    const runtime = this.options.runtimes.get(record.runtime);
    if (!runtime)
      throw new OrchestratorError("UNAVAILABLE", `no ${record.runtime} runtime on this node`);
    return runtime;
  }

  private placeholder(command: AgentCommand): InstanceRecord {
    return {
      instanceId: command.instanceId,
      instanceName: command.instanceId,
      epoch: command.epoch,
      state: "DESTROYING",
      runtime: "process",
      templateName: "",
      templateVersion: 0,
      restart: { policy: "never", maxRestarts: 0, windowSeconds: 1 },
      readiness: { timeoutSeconds: 1 },
      stop: { input: null, signal: "SIGTERM", timeoutSeconds: 1 },
      restarts: [],
    };
  }

  /** Runs `work` after everything queued for this instance. */
  private serial<T>(instanceId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(instanceId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    const settled = next.catch(() => undefined);
    this.queues.set(instanceId, settled);
    void settled.then(() => {
      if (this.queues.get(instanceId) === settled) this.queues.delete(instanceId);
    });
    return next;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
