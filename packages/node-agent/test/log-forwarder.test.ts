import type { Runtime, RuntimeLogLine } from "@orchestrator/core";
import { describe, expect, it } from "vitest";
import { LogForwarder } from "../src/sync/log-forwarder.js";

/** A runtime whose instance does not exist at first, then logs two lines. */
function lateRuntime() {
  let exists = false;
  const runtime = {
    async logs(): Promise<AsyncIterable<RuntimeLogLine>> {
      if (!exists) throw new Error("no such instance yet");
      return (async function* () {
        yield { stream: "stdout", line: "hello", at: new Date() } as RuntimeLogLine;
        yield { stream: "stderr", line: "world", at: new Date() } as RuntimeLogLine;
      })();
    },
  } as unknown as Runtime;
  return { runtime, create: () => (exists = true) };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 10));

describe("LogForwarder", () => {
  it("follows again when a watch could not start (the instance did not exist yet)", async () => {
    const { runtime, create } = lateRuntime();
    const forwarder = new LogForwarder(
      () => runtime,
      () => undefined,
    );
    forwarder.setWatched(["inst_1"]);
    await tick();
    expect(forwarder.drain()).toEqual([]);
    create();
    forwarder.setWatched(["inst_1"]);
    await tick();
    const [batch] = forwarder.drain();
    expect(batch?.lines.map((line) => line.line)).toEqual(["hello", "world"]);
    forwarder.close();
  });

  it("keeps at most maxLines per instance and says how many were dropped", async () => {
    const lines = Array.from(
      { length: 10 },
      (_, i) => ({ stream: "stdout", line: `l${i}`, at: new Date() }) as RuntimeLogLine,
    );
    const runtime = {
      logs: async () =>
        (async function* () {
          yield* lines;
        })(),
    } as unknown as Runtime;
    const forwarder = new LogForwarder(
      () => runtime,
      () => undefined,
      4,
    );
    forwarder.setWatched(["inst_2"]);
    await tick();
    const [batch] = forwarder.drain();
    expect(batch?.lines[0]?.line).toBe("[orchestrator] 6 log lines dropped");
    expect(batch?.lines.slice(1).map((line) => line.line)).toEqual(["l6", "l7", "l8", "l9"]);
    forwarder.close();
  });
});
