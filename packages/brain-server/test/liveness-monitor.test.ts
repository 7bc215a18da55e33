import { FakeClock } from "@orchestrator/core/testing";
import { describe, expect, it } from "vitest";
import { LivenessMonitor } from "../src/liveness/liveness-monitor.js";

const options = { offlineAfterMs: 15_000, massSilenceFraction: 0.5, massSilenceMinNodes: 3 };

function setup(nodes: string[]) {
  const clock = new FakeClock();
  const monitor = new LivenessMonitor(clock, options);
  for (const node of nodes) monitor.track(node);
  return { clock, monitor };
}

describe("LivenessMonitor", () => {
  it("marks nobody during the startup grace window", () => {
    const { clock, monitor } = setup(["a", "b"]);
    clock.advance(14_999);
    expect(monitor.sweep()).toEqual({ offline: [], grace: true, degraded: false });
  });

  it("marks a silent node offline after the timeout, once", () => {
    const { clock, monitor } = setup(["a", "b", "c", "d"]);
    clock.advance(10_000);
    monitor.seen("a");
    monitor.seen("b");
    monitor.seen("c");
    clock.advance(5_000);
    expect(monitor.sweep().offline).toEqual(["d"]);
    expect(monitor.isOffline("d")).toBe(true);
    expect(monitor.sweep().offline).toEqual([]);
  });

  it("suspects itself when most nodes go silent at once", () => {
    const { clock, monitor } = setup(["a", "b", "c", "d"]);
    clock.advance(15_000);
    monitor.seen("a");
    expect(monitor.sweep()).toEqual({ offline: [], grace: false, degraded: true });
    expect(monitor.isOffline("b")).toBe(false);
  });

  it("still marks a lone silent node in a small cluster", () => {
    const { clock, monitor } = setup(["solo"]);
    clock.advance(15_000);
    expect(monitor.sweep().offline).toEqual(["solo"]);
  });

  it("reports a comeback as a transition, and plain heartbeats as none", () => {
    const { clock, monitor } = setup(["a"]);
    expect(monitor.seen("a")).toBe(false);
    clock.advance(20_000);
    monitor.sweep();
    expect(monitor.seen("a")).toBe(true);
    expect(monitor.seen("a")).toBe(false);
    expect(monitor.silenceMs("a")).toBe(0);
  });

  it("gives every node a full window again after the Brain itself stalled for a window", () => {
    const { clock, monitor } = setup(["solo"]);
    clock.advance(15_000);
    monitor.seen("solo");
    expect(monitor.sweep().offline).toEqual([]);
    // The Brain was paused (SIGSTOP, suspended VM): no sweep for 20 s, and the
    // node's heartbeats queued meanwhile are not read yet when it resumes.
    clock.advance(20_000);
    expect(monitor.sweep()).toEqual({ offline: [], grace: true, degraded: false });
    clock.advance(14_000);
    expect(monitor.sweep().offline).toEqual([]);
    monitor.seen("solo");
    clock.advance(1_000);
    expect(monitor.sweep().offline).toEqual([]);
    // Really silent from then on (the Brain sweeping as usual): offline one window later.
    clock.advance(10_000);
    expect(monitor.sweep().offline).toEqual([]);
    clock.advance(5_000);
    expect(monitor.sweep().offline).toEqual(["solo"]);
  });

  it("measures on the monotonic clock, not the wall clock", () => {
    const { clock, monitor } = setup(["a"]);
    clock.advance(16_000);
    monitor.seen("a");
    clock.setWallClock("2030-01-01T00:00:00Z");
    expect(monitor.sweep().offline).toEqual([]);
  });
});
