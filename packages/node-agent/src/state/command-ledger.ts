/**
 * Which commands this agent already ran, with their first result, so a
 * redelivered command is answered, never executed twice; and the highest
 * placement epoch seen per instance, so a stale command is refused. Persisted
 * in the state dir; bounded (oldest entries are forgotten first).
 *
 * A command is also written down when it *begins*: a command that began and
 * has no result was interrupted by an agent crash. The Brain delivers it again
 * (it never got an answer), and then it is resumed, not dropped — the agent's
 * commands are written to be re-run safely (a prepare is staged and swapped in,
 * start/stop/kill/destroy look at the runtime first, a restart whose new run
 * already began is not repeated). The one command that cannot be repeated
 * safely, console `input`, is answered "interrupted" instead: a line typed into
 * a game server is sent at most once.
 */
import type { CommandType } from "@orchestrator/core";
import { appendJsonLines, readJsonLines, rewriteJsonLines } from "./json-lines-file.js";

export interface CommandResult {
  ok: boolean;
  message?: string;
}

export interface LedgerCommand {
  id: string;
  instanceId: string;
  epoch: number;
  /** Needed to decide how an interrupted command is resumed. */
  type?: CommandType;
}

/** A finished command and its first result. */
interface DoneEntry {
  id: string;
  instanceId: string;
  epoch: number;
  result: CommandResult;
}

/** A command that began (its result line follows unless the agent crashed first). */
interface BegunEntry {
  id: string;
  instanceId: string;
  epoch: number;
  type: CommandType;
  /** Epoch ms when it first began. */
  begunAt: number;
}

type LedgerLine = DoneEntry | BegunEntry;

/** Commands that must not run twice even when the first run never finished. */
const NOT_REPEATABLE: ReadonlySet<CommandType> = new Set<CommandType>(["input"]);

export type CommandAdmission =
  | { run: true; resumed?: { begunAt: number } }
  | { run: false; reason: "duplicate"; result: CommandResult }
  | { run: false; reason: "stale-epoch"; result: CommandResult }
  | { run: false; reason: "interrupted"; result: CommandResult };

export class CommandLedger {
  private readonly results = new Map<string, DoneEntry>();
  /** Began and not finished (in this process, or interrupted by a crash). */
  private readonly begun = new Map<string, BegunEntry>();
  private readonly epochs = new Map<string, number>();
  private appendsSinceCompaction = 0;

  private constructor(
    private readonly path: string,
    private readonly maxEntries: number,
    private readonly now: () => number,
  ) {}

  static async open(
    path: string,
    maxEntries = 10_000,
    now: () => number = Date.now,
  ): Promise<CommandLedger> {
    const ledger = new CommandLedger(path, maxEntries, now);
    for (const line of await readJsonLines<LedgerLine>(path)) {
      if ("result" in line) ledger.remember(line);
      else if (!ledger.results.has(line.id)) {
        ledger.begun.set(line.id, line);
        ledger.observeEpoch(line.instanceId, line.epoch);
      }
    }
    return ledger;
  }

  /**
   * Should this command run? Duplicates get their first result; older epochs
   * are refused; an interrupted command runs again (`resumed`), except one
   * that must not be repeated.
   */
  admit(command: LedgerCommand): CommandAdmission {
    const done = this.results.get(command.id);
    if (done) return { run: false, reason: "duplicate", result: done.result };
    const highest = this.epochs.get(command.instanceId) ?? 0;
    if (command.epoch < highest) {
      return {
        run: false,
        reason: "stale-epoch",
        result: { ok: false, message: `stale epoch ${command.epoch} (seen ${highest})` },
      };
    }
    const interrupted = this.begun.get(command.id);
    if (!interrupted) return { run: true };
    if (NOT_REPEATABLE.has(interrupted.type)) {
      return {
        run: false,
        reason: "interrupted",
        result: {
          ok: false,
          message: `${interrupted.type} was interrupted by an agent restart and is not repeated`,
        },
      };
    }
    return { run: true, resumed: { begunAt: interrupted.begunAt } };
  }

  /**
   * Writes down (durably) that a command begins, before it touches anything.
   * A resumed command keeps its first begin time.
   */
  async begin(command: LedgerCommand & { type: CommandType }): Promise<void> {
    if (this.results.has(command.id) || this.begun.has(command.id)) return;
    const entry: BegunEntry = {
      id: command.id,
      instanceId: command.instanceId,
      epoch: command.epoch,
      type: command.type,
      begunAt: this.now(),
    };
    this.begun.set(command.id, entry);
    await this.append(entry);
  }

  /** Commands that began and never finished (interrupted by a crash, or running now). */
  unfinished(): { id: string; instanceId: string; type: CommandType; begunAt: number }[] {
    return [...this.begun.values()].map(({ id, instanceId, type, begunAt }) => ({
      id,
      instanceId,
      type,
      begunAt,
    }));
  }

  /** Records a command's result (the first one wins). */
  async record(command: LedgerCommand, result: CommandResult): Promise<void> {
    if (this.results.has(command.id)) return;
    const entry: DoneEntry = {
      id: command.id,
      instanceId: command.instanceId,
      epoch: command.epoch,
      result,
    };
    this.remember(entry);
    await this.append(entry);
  }

  /** Notes an epoch seen on a command even before it finishes (a newer placement). */
  observeEpoch(instanceId: string, epoch: number): void {
    if ((this.epochs.get(instanceId) ?? 0) < epoch) this.epochs.set(instanceId, epoch);
  }

  highestEpoch(instanceId: string): number {
    return this.epochs.get(instanceId) ?? 0;
  }

  private remember(entry: DoneEntry): void {
    this.begun.delete(entry.id);
    this.results.set(entry.id, entry);
    this.observeEpoch(entry.instanceId, entry.epoch);
    while (this.results.size > this.maxEntries) {
      const oldest = this.results.keys().next().value as string;
      this.results.delete(oldest);
    }
  }

  private async append(line: LedgerLine): Promise<void> {
    await appendJsonLines(this.path, [line]);
    this.appendsSinceCompaction += 1;
    if (this.appendsSinceCompaction > this.maxEntries * 2) await this.compact();
  }

  /** Keeps the remembered results and the unfinished commands (still to be resumed). */
  private async compact(): Promise<void> {
    await rewriteJsonLines(this.path, [...this.results.values(), ...this.begun.values()]);
    this.appendsSinceCompaction = 0;
  }
}
