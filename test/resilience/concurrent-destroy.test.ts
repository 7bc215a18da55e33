/**
 * Instances destroyed at the same moment, right after they became RUNNING,
 * with real processes: every one reaches DESTROYED. (The agent once wrote
 * their reports concurrently; an acknowledgement of the later one dropped
 * the earlier one before it was sent, and that instance stayed DESTROYING.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep, stopAllCliProcesses } from "./support/cli-process.js";
import { Platform } from "./support/platform.js";

describe("instances destroyed together (real processes, SQLite)", { timeout: 120_000 }, () => {
  let platform: Platform;

  beforeAll(async () => {
    platform = await Platform.started("sqlite");
    const pushed = await platform.pushTemplate({ name: "cd-quick", runtime: "process" });
    expect(pushed.code, pushed.output).toBe(0);
    await platform.addAgent("cd-agent", "process", "43000-43099");
  }, 120_000);

  afterAll(async () => {
    try {
      await platform?.dispose();
    } finally {
      await stopAllCliProcesses();
    }
  }, 120_000);

  it("three instances deleted at once right after RUNNING → every one DESTROYED within seconds, each destroyed once", async () => {
    for (let round = 0; round < 3; round += 1) {
      const ids: string[] = [];
      for (const name of ["a", "b", "c"])
        ids.push(await platform.createInstance("cd-quick", `${name}${round}`));
      for (const id of ids) await platform.waitForState(id, "RUNNING");
      const deleted = await Promise.all(
        ids.map((id) => platform.api("DELETE", `/instances/${id}`)),
      );
      expect(deleted.map((response) => response.status)).toEqual([202, 202, 202]);
      const deadline = Date.now() + 10_000;
      let left = ids;
      while (left.length > 0 && Date.now() < deadline) {
        await sleep(100);
        const states = await Promise.all(left.map((id) => platform.instance(id)));
        left = states.filter((instance) => instance.state !== "DESTROYED").map((i) => i.id);
      }
      expect(left, `round ${round}: still not DESTROYED`).toEqual([]);
      for (const id of ids) {
        const transitions = (await platform.events(id)).map((event) => `${event.from}>${event.to}`);
        expect(transitions.filter((t) => t === "DESTROYING>DESTROYED")).toHaveLength(1);
      }
    }
  });
});
