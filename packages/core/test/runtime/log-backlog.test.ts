import { describe, expect, it } from "vitest";
import type { RuntimeLogLine } from "../../src/ports/runtime.js";
import { LineSplitter } from "../../src/runtime/line-splitter.js";
import { LogBacklog } from "../../src/runtime/log-backlog.js";

const line = (text: string, at = new Date(0), stream: "stdout" | "stderr" = "stdout") =>
  ({ stream, line: text, at }) satisfies RuntimeLogLine;

async function take<T>(iterable: AsyncIterable<T>, count: number): Promise<T[]> {
  const result: T[] = [];
  if (count === 0) return result;
  for await (const item of iterable) {
    result.push(item);
    if (result.length === count) break;
  }
  return result;
}

describe("LogBacklog", () => {
  it("keeps the most recent lines by count", () => {
    const backlog = new LogBacklog({ maxLines: 3 });
    for (const text of ["a", "b", "c", "d", "e"]) backlog.push(line(text));
    expect(backlog.lines().map((l) => l.line)).toEqual(["c", "d", "e"]);
    expect(backlog.lines({ tail: 2 }).map((l) => l.line)).toEqual(["d", "e"]);
    expect(backlog.lines({ tail: 0 })).toEqual([]);
    expect(backlog.size).toBe(3);
    expect(() => backlog.lines({ tail: -1 })).toThrow(RangeError);
  });

  it("keeps the most recent lines by size, but always the newest one", () => {
    const backlog = new LogBacklog({ maxLines: 100, maxBytes: 10 });
    backlog.push(line("1234"));
    backlog.push(line("5678"));
    backlog.push(line("9"));
    expect(backlog.lines().map((l) => l.line)).toEqual(["5678", "9"]);
    backlog.push(line("x".repeat(50)));
    expect(backlog.lines().map((l) => l.line)).toEqual(["x".repeat(50)]);
  });

  it("filters by time", () => {
    const backlog = new LogBacklog();
    backlog.push(line("old", new Date(1000)));
    backlog.push(line("new", new Date(2000)));
    expect(backlog.lines({ since: new Date(1500) }).map((l) => l.line)).toEqual(["new"]);
  });

  it("follows: kept lines first, then live ones, without gap or duplicate", async () => {
    const backlog = new LogBacklog();
    backlog.push(line("before"));
    const controller = new AbortController();
    const reading = take(backlog.read({ follow: true, signal: controller.signal }), 3);
    await Promise.resolve();
    backlog.push(line("live-1"));
    backlog.push(line("live-2"));
    expect((await reading).map((l) => l.line)).toEqual(["before", "live-1", "live-2"]);
    expect(backlog.followerCount).toBe(0);
  });

  it("ends a follow when the signal aborts or the backlog closes", async () => {
    const backlog = new LogBacklog();
    const controller = new AbortController();
    const aborted = take(backlog.read({ follow: true, signal: controller.signal }), 10);
    const closed = take(backlog.read({ follow: true }), 10);
    await new Promise((resolve) => setImmediate(resolve));
    expect(backlog.followerCount).toBe(2);
    backlog.push(line("one"));
    await new Promise((resolve) => setImmediate(resolve));
    controller.abort(); // ends at once, even with lines still queued
    backlog.push(line("two"));
    expect((await aborted).map((l) => l.line)).toEqual(["one"]);
    backlog.close();
    expect((await closed).map((l) => l.line)).toEqual(["one", "two"]);
    backlog.push(line("ignored"));
    expect(backlog.lines().map((l) => l.line)).toEqual(["one", "two"]);
    expect(backlog.followerCount).toBe(0);
  });

  it("drops the oldest queued lines of a slow follower instead of growing", async () => {
    const backlog = new LogBacklog({ maxLines: 100, followerQueueLines: 2 });
    const iterator = backlog.read({ follow: true })[Symbol.asyncIterator]();
    const first = iterator.next();
    backlog.push(line("a"));
    expect((await first).value?.line).toBe("a");
    for (const text of ["b", "c", "d", "e"]) backlog.push(line(text));
    expect(backlog.droppedLines).toBe(2);
    expect((await iterator.next()).value?.line).toBe("d");
    expect((await iterator.next()).value?.line).toBe("e");
    await iterator.return?.(undefined);
  });

  it("applies since to live lines too", async () => {
    const backlog = new LogBacklog();
    const controller = new AbortController();
    const reading = take(
      backlog.read({ follow: true, since: new Date(500), signal: controller.signal }),
      1,
    );
    await Promise.resolve();
    backlog.push(line("stale", new Date(100)));
    backlog.push(line("fresh", new Date(900)));
    expect((await reading).map((l) => l.line)).toEqual(["fresh"]);
  });

  it("refuses nonsensical bounds", () => {
    expect(() => new LogBacklog({ maxLines: 0 })).toThrow(RangeError);
  });
});

describe("LineSplitter", () => {
  it("splits across chunks, strips CR, decodes UTF-8 split mid-character", () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((text) => lines.push(text));
    const bytes = Buffer.from("héllo\r\nwor", "utf8");
    splitter.push(bytes.subarray(0, 2)); // cuts "é" in half
    splitter.push(bytes.subarray(2));
    splitter.push("ld\n\npartial");
    expect(lines).toEqual(["héllo", "world", ""]);
    splitter.flush();
    expect(lines).toEqual(["héllo", "world", "", "partial"]);
  });

  it("cuts over-long lines", () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((text) => lines.push(text), 4);
    splitter.push("abcdefghij");
    expect(lines).toEqual(["abcd", "efgh"]);
    splitter.push("\n");
    expect(lines).toEqual(["abcd", "efgh", "ij"]);
    expect(() => new LineSplitter(() => {}, 0)).toThrow(RangeError);
  });
});
