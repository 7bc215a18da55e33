/**
 * Which commands this agent already ran, with their first result, so a
 * redelivered command is answered, never executed twice; and the highest
 * placement epoch seen per instance, so a stale command is refused. Persisted
 * in the state dir; bounded (oldest entries are forgotten first).
 */
import { appendJsonLines, readJsonLines, rewriteJsonLines } from "./json-lines-file.js";

export interface CommandResult {
  ok: boolean;
  message?: string;
}

interface LedgerEntry {
  id: string;
  instanceId: string;
  epoch: number;
  result: CommandResult;
}

export type CommandAdmission =
  | { run: true }
  | { run: false; reason: "duplicate"; result: CommandResult }
  | { run: false; reason: "stale-epoch"; result: CommandResult };

export class CommandLedger {
  private readonly results = new Map<string, LedgerEntry>();
  private readonly epochs = new Map<string, number>();
  private appendsSinceCompaction = 0;

  private constructor(
    private readonly path: string,
    private readonly maxEntries: number,
  ) {}

  static async open(path: string, maxEntries = 10_000): Promise<CommandLedger> {
    const ledger = new CommandLedger(path, maxEntries);
    for (const entry of await readJsonLines<LedgerEntry>(path)) ledger.remember(entry);
    return ledger;
  }

  /** Should this command run? Duplicates get their first result; older epochs are refused. */
  admit(command: { id: string; instanceId: string; epoch: number }): CommandAdmission {
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
    return { run: true };
  }

  /** Records a command's result (the first one wins). */
  async record(
    command: { id: string; instanceId: string; epoch: number },
    result: CommandResult,
  ): Promise<void> {
    if (this.results.has(command.id)) return;
    const entry: LedgerEntry = { ...command, result };
    this.remember(entry);
    await appendJsonLines(this.path, [entry]);
    this.appendsSinceCompaction += 1;
    if (this.appendsSinceCompaction > this.maxEntries) await this.compact();
  }

  /** Notes an epoch seen on a command even before it finishes (a newer placement). */
  observeEpoch(instanceId: string, epoch: number): void {
    if ((this.epochs.get(instanceId) ?? 0) < epoch) this.epochs.set(instanceId, epoch);
  }

  highestEpoch(instanceId: string): number {
    return this.epochs.get(instanceId) ?? 0;
  }

  private remember(entry: LedgerEntry): void {
    this.results.set(entry.id, entry);
    this.observeEpoch(entry.instanceId, entry.epoch);
    while (this.results.size > this.maxEntries) {
      const oldest = this.results.keys().next().value as string;
      this.results.delete(oldest);
    }
  }

  private async compact(): Promise<void> {
    await rewriteJsonLines(this.path, [...this.results.values()]);
    this.appendsSinceCompaction = 0;
  }
}
