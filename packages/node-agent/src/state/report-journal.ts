/**
 * Lifecycle reports not yet acknowledged by the Brain, kept in an append-only
 * file in the agent's state dir so they survive an agent restart, and handed
 * out in bounded batches in the order they were made.
 */
import type { SyncReport } from "@orchestrator/core";
import { appendJsonLines, readJsonLines, rewriteJsonLines } from "./json-lines-file.js";

/** A report as journaled and sent: core's `SyncReport` (journal position `n`, per-instance `seq`). */
export type AgentReport = SyncReport;

/** An acknowledgement line; a compacted file keeps the per-instance sequence numbers in it. */
interface Acknowledgement {
  ack: number;
  seqs?: Record<string, number>;
}

export class ReportJournal {
  private entries: AgentReport[] = [];
  private nextN = 1;
  private acknowledgedN = 0;
  /** Per-instance next sequence number (continues after a restart). */
  private readonly seqs = new Map<string, number>();
  /** The last append being written (appends are chained behind it). */
  private writing: Promise<unknown> = Promise.resolve();

  private constructor(private readonly path: string) {}

  static async open(path: string): Promise<ReportJournal> {
    const journal = new ReportJournal(path);
    const stored = await readJsonLines<AgentReport | Acknowledgement>(path);
    for (const entry of stored) {
      if ("ack" in entry) {
        journal.acknowledgedN = Math.max(journal.acknowledgedN, entry.ack);
        journal.nextN = Math.max(journal.nextN, entry.ack + 1);
        for (const [instanceId, seq] of Object.entries(entry.seqs ?? {})) {
          journal.seedSequence(instanceId, seq);
        }
      } else {
        journal.entries.push(entry);
        journal.nextN = Math.max(journal.nextN, entry.n + 1);
        journal.seqs.set(
          entry.instanceId,
          Math.max(journal.seqs.get(entry.instanceId) ?? 0, entry.seq),
        );
      }
    }
    journal.entries = journal.entries.filter((entry) => entry.n > journal.acknowledgedN);
    return journal;
  }

  /** Seeds per-instance sequence numbers from what the Brain last applied. */
  seedSequence(instanceId: string, seq: number): void {
    if ((this.seqs.get(instanceId) ?? 0) < seq) this.seqs.set(instanceId, seq);
  }

  /**
   * Records a report (durably) and returns it with its journal position and
   * sequence number. Appends are written one after the other, so reports
   * become pending in journal order: a sync always carries a prefix of what
   * is unacknowledged, and the Brain's acknowledgement (the highest position
   * it stored) never covers a report still being written. (Concurrent writes
   * finishing out of order once let an acknowledgement drop a report that had
   * never been sent: an instance destroyed together with another stayed
   * DESTROYING.)
   */
  append(report: Omit<AgentReport, "n" | "seq">): Promise<AgentReport> {
    const seq = (this.seqs.get(report.instanceId) ?? 0) + 1;
    const entry: AgentReport = { ...report, n: this.nextN, seq };
    this.nextN += 1;
    this.seqs.set(report.instanceId, seq);
    const written = this.writing.then(async () => {
      await appendJsonLines(this.path, [entry]);
      this.entries.push(entry);
      return entry;
    });
    // The next append waits for this one, whether it succeeded or not.
    this.writing = written.catch(() => undefined);
    return written;
  }

  /** The oldest unacknowledged reports, at most `limit`. */
  pending(limit: number): AgentReport[] {
    return this.entries.slice(0, limit);
  }

  get pendingCount(): number {
    return this.entries.length;
  }

  /** Drops reports up to journal position `n` (the Brain stored them). */
  async acknowledge(n: number): Promise<void> {
    if (n <= this.acknowledgedN) return;
    this.acknowledgedN = n;
    this.entries = this.entries.filter((entry) => entry.n > n);
    if (this.entries.length === 0) {
      // Compact: keep the position and the sequence numbers, so numbering
      // continues after a restart (the Brain ignores a seq it has already seen).
      await rewriteJsonLines(this.path, [{ ack: n, seqs: Object.fromEntries(this.seqs) }]);
    } else {
      await appendJsonLines(this.path, [{ ack: n }]);
    }
  }

  /** The last sequence number used for an instance. */
  lastSeq(instanceId: string): number {
    return this.seqs.get(instanceId) ?? 0;
  }
}
