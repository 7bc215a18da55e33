import { appendFile, mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { InstanceTrigger } from "@orchestrator/core";
import { beforeEach, describe, expect, it } from "vitest";
import { CommandLedger } from "../src/state/command-ledger.js";
import { readCredential, writeCredential } from "../src/state/credential-store.js";
import { ReportJournal } from "../src/state/report-journal.js";
import { Backoff } from "../src/sync/backoff.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "orch-agent-state-"));
});

const report = (instanceId: string, trigger: InstanceTrigger) => ({
  instanceId,
  epoch: 1,
  trigger,
  reason: trigger,
  at: "2026-01-01T00:00:00.000Z",
});

describe("ReportJournal", () => {
  it("numbers reports per instance and keeps them until acknowledged, across restarts", async () => {
    const path = join(dir, "reports.jsonl");
    const journal = await ReportJournal.open(path);
    const a1 = await journal.append(report("a", "prepare"));
    const b1 = await journal.append(report("b", "prepare"));
    const a2 = await journal.append(report("a", "prepared"));
    expect([a1.seq, b1.seq, a2.seq]).toEqual([1, 1, 2]);
    expect([a1.n, b1.n, a2.n]).toEqual([1, 2, 3]);
    await journal.acknowledge(2);

    const reopened = await ReportJournal.open(path);
    expect(reopened.pending(10).map((entry) => entry.n)).toEqual([3]);
    const a3 = await reopened.append(report("a", "start"));
    expect(a3).toMatchObject({ n: 4, seq: 3 });
  });

  it("never lets an acknowledgement drop a report that was still being written", async () => {
    // Reports made at the same time (two instances destroyed together): whenever
    // a sync looks, what is pending is a prefix of the journal, so acknowledging
    // the highest position sent can drop nothing unsent.
    const journal = await ReportJournal.open(join(dir, "concurrent.jsonl"));
    const seen: number[][] = [];
    const appends = Array.from({ length: 60 }, (_, i) =>
      journal.append(report(`i${i % 7}`, "destroyed")).then(() => {
        seen.push(journal.pending(1_000).map((entry) => entry.n));
      }),
    );
    await Promise.all(appends);
    for (const ns of seen) expect(ns).toEqual(ns.map((_, i) => i + 1));
    // A sync took the first ten, the Brain stored them: exactly those go.
    const sent = journal.pending(10);
    await journal.acknowledge(Math.max(...sent.map((entry) => entry.n)));
    expect(journal.pending(1_000).map((entry) => entry.n)).toEqual(
      Array.from({ length: 50 }, (_, i) => i + 11),
    );
  });

  it("hands out bounded batches in order", async () => {
    const journal = await ReportJournal.open(join(dir, "r.jsonl"));
    for (let i = 0; i < 25; i += 1) await journal.append(report(`i${i % 3}`, "prepare"));
    expect(journal.pending(10).map((entry) => entry.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(journal.pendingCount).toBe(25);
  });

  it("ignores a torn last line left by a crash", async () => {
    const path = join(dir, "torn.jsonl");
    const journal = await ReportJournal.open(path);
    await journal.append(report("a", "prepare"));
    await appendFile(path, '{"n":2,"instanceId":"a","se');
    const reopened = await ReportJournal.open(path);
    expect(reopened.pending(10)).toHaveLength(1);
  });

  it("compacts to the acknowledged position when everything is delivered", async () => {
    const path = join(dir, "c.jsonl");
    const journal = await ReportJournal.open(path);
    await journal.append(report("a", "prepare"));
    await journal.acknowledge(1);
    expect(JSON.parse(await readFile(path, "utf8"))).toEqual({ ack: 1, seqs: { a: 1 } });
    const reopened = await ReportJournal.open(path);
    expect(await reopened.append(report("b", "prepare"))).toMatchObject({ n: 2, seq: 1 });
    expect(await reopened.append(report("a", "prepared"))).toMatchObject({ n: 3, seq: 2 });
  });

  it("continues an instance's sequence from what the Brain last applied", async () => {
    const journal = await ReportJournal.open(join(dir, "s.jsonl"));
    journal.seedSequence("a", 41);
    expect((await journal.append(report("a", "ready"))).seq).toBe(42);
  });
});

describe("CommandLedger", () => {
  it("answers a repeated command with its first result, after a restart too", async () => {
    const path = join(dir, "commands.jsonl");
    const ledger = await CommandLedger.open(path);
    const command = { id: "cmd_1", instanceId: "a", epoch: 1 };
    expect(ledger.admit(command)).toEqual({ run: true });
    await ledger.record(command, { ok: true });
    await ledger.record(command, { ok: false, message: "second result ignored" });
    const reopened = await CommandLedger.open(path);
    expect(reopened.admit(command)).toEqual({
      run: false,
      reason: "duplicate",
      result: { ok: true },
    });
  });

  it("refuses commands from an older placement epoch", async () => {
    const ledger = await CommandLedger.open(join(dir, "e.jsonl"));
    await ledger.record({ id: "cmd_2", instanceId: "a", epoch: 3 }, { ok: true });
    expect(ledger.admit({ id: "cmd_3", instanceId: "a", epoch: 2 })).toMatchObject({
      run: false,
      reason: "stale-epoch",
    });
    expect(ledger.admit({ id: "cmd_4", instanceId: "a", epoch: 3 })).toEqual({ run: true });
    expect(ledger.admit({ id: "cmd_5", instanceId: "b", epoch: 1 })).toEqual({ run: true });
  });

  it("stays bounded", async () => {
    const ledger = await CommandLedger.open(join(dir, "b.jsonl"), 5);
    for (let i = 0; i < 12; i += 1)
      await ledger.record({ id: `c${i}`, instanceId: "a", epoch: 1 }, { ok: true });
    expect(ledger.admit({ id: "c11", instanceId: "a", epoch: 1 }).run).toBe(false);
    expect(ledger.admit({ id: "c0", instanceId: "a", epoch: 1 }).run).toBe(true);
    const reopened = await CommandLedger.open(join(dir, "b.jsonl"), 5);
    expect(reopened.admit({ id: "c11", instanceId: "a", epoch: 1 }).run).toBe(false);
  });
});

describe("credential store", () => {
  it("writes the credential readable by the owner only", async () => {
    const path = join(dir, "credential.json");
    await writeFile(path, "old", { mode: 0o644 });
    await writeCredential(path, {
      brainUrl: "http://brain:8080",
      nodeId: "node_1",
      credential: "orch_node_x",
    });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readCredential(path)).toEqual({
      brainUrl: "http://brain:8080",
      nodeId: "node_1",
      credential: "orch_node_x",
    });
    expect(await readCredential(join(dir, "absent.json"))).toBeNull();
  });
});

describe("Backoff", () => {
  it("grows exponentially up to the cap, with full jitter", () => {
    const highest = new Backoff({ baseMs: 100, capMs: 5_000, random: () => 0.999999 });
    const delays = Array.from({ length: 8 }, () => highest.next());
    expect(delays).toEqual([99, 199, 399, 799, 1599, 3199, 4999, 4999]);
    const lowest = new Backoff({ baseMs: 100, capMs: 5_000, random: () => 0 });
    expect(lowest.next()).toBe(0);
    highest.reset();
    expect(highest.failures).toBe(0);
  });

  it("can be capped lower (the Brain's heartbeat interval), never above its own cap nor below the base", () => {
    const backoff = new Backoff({ baseMs: 100, capMs: 30_000, random: () => 0.999999 });
    backoff.limitCap(2_000);
    const delays = Array.from({ length: 8 }, () => backoff.next());
    expect(Math.max(...delays)).toBe(1_999);
    backoff.limitCap(60_000);
    backoff.next(); // 100 · 2^8 = 25 600; the next one (51 200) is above the own cap
    expect(backoff.next()).toBe(29_999);
    backoff.limitCap(1);
    expect(backoff.next()).toBe(99);
  });
});
