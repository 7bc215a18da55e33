/**
 * `AgentSyncOrder`: abandoned syncs read late are stale; commands of answers
 * the agent never received are handed out again. The same scenario with a
 * real Brain process paused mid-sync is test/resilience/sync-faults.test.ts.
 */
import type { AgentCommand } from "@orchestrator/core";
import { describe, expect, it } from "vitest";
import { AgentSyncOrder } from "../src/services/agent-sync-order.js";

const command = (id: string): AgentCommand => ({
  id,
  instanceId: "i1",
  type: "start",
  epoch: 1,
  payload: {},
});

describe("AgentSyncOrder", () => {
  it("takes syncs of a session in order: one older than one taken up is stale", () => {
    const order = new AgentSyncOrder();
    expect(order.begin("n1", "s1", 1, 0)).toBe(true);
    expect(order.begin("n1", "s1", 3, 1)).toBe(true);
    expect(order.begin("n1", "s1", 2, 1)).toBe(false); // abandoned, read late
    expect(order.begin("n1", "s1", 3, 1)).toBe(false); // the same request twice
    expect(order.begin("n2", "s9", 1, 0)).toBe(true); // nodes are apart
    // A new agent process numbers from 1 again: in a new session, or
    // continuing its predecessor's (it has received no answer yet).
    expect(order.begin("n1", "s2", 1, 0)).toBe(true);
    expect(order.begin("n1", "s2", 5, 1)).toBe(true);
    expect(order.begin("n1", "s2", 1, 0)).toBe(true);
    expect(order.begin("n1", "s2", 2, 1)).toBe(true);
  });

  it("hands out again what answers the agent never received held, until it confirms one", () => {
    const order = new AgentSyncOrder();
    order.begin("n1", "s1", 1, 0);
    order.gave("n1", "s1", 1, [command("a")]);
    order.begin("n1", "s1", 2, 1);
    // Answer 1 arrived: nothing to repeat.
    expect(order.missed("n1", "s1", 1, 2)).toEqual([]);
    order.gave("n1", "s1", 2, [command("b"), command("c")]);
    order.begin("n1", "s1", 3, 1);
    // Answer 2 was lost (the agent says its last was 1).
    expect(order.missed("n1", "s1", 1, 3).map((c) => c.id)).toEqual(["b", "c"]);
    order.gave("n1", "s1", 3, [command("b"), command("c"), command("d")]);
    order.begin("n1", "s1", 4, 1);
    // Answer 3 lost too: b, c, d once each.
    expect(order.missed("n1", "s1", 1, 4).map((c) => c.id)).toEqual(["b", "c", "d"]);
    order.begin("n1", "s1", 5, 1);
    // Answer 4 (holding nothing) arrived: everything before it is forgotten.
    expect(order.missed("n1", "s1", 4, 5)).toEqual([]);
    // Another session knows nothing of these.
    expect(order.missed("n1", "s2", 0, 9)).toEqual([]);
  });

  it("stays bounded per node", () => {
    const order = new AgentSyncOrder();
    for (let n = 1; n <= 40; n++) {
      order.begin("n1", "s1", n, n - 1);
      order.gave("n1", "s1", n, [command(`c${n}`)]);
    }
    order.begin("n1", "s1", 41, 1);
    const missed = order.missed("n1", "s1", 0, 41).map((c) => c.id);
    expect(missed).toHaveLength(16);
    expect(missed.at(-1)).toBe("c40");
  });
});
