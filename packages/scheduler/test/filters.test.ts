import { describe, expect, it } from "vitest";
import { createScheduler, place, type SchedulerFilter } from "../src/index.js";
import { node, placedOn, reasons } from "./helpers.js";

const small = { resources: { memoryMb: 1024, cpu: 1 } };

describe("status filters", () => {
  it("skips OFFLINE and DRAINING nodes, and nodes an operator asked to drain", () => {
    const nodes = [
      node("off", { status: "OFFLINE" }),
      node("drain", { status: "DRAINING" }),
      node("asked", { drainRequested: true }),
      node("ok"),
    ];
    const result = place(small, nodes);
    expect(placedOn(result)).toBe("ok");
    expect(reasons(result)).toEqual(["1 status: offline", "2 draining: draining"]);
  });

  it("treats a node without a status as ONLINE", () => {
    const { status: _status, ...bare } = node("bare");
    expect(placedOn(place(small, [bare]))).toBe("bare");
  });
});

describe("resource filters", () => {
  it("rejects nodes without enough free memory and says what the best one has", () => {
    const nodes = [
      node("a", { allocated: { memoryMb: 6144, cpu: 0, diskMb: 0 } }),
      node("b", { allocated: { memoryMb: 5120, cpu: 0, diskMb: 0 } }),
    ];
    const result = place({ resources: { memoryMb: 4096 } }, nodes);
    expect(result.placed).toBe(false);
    expect(reasons(result)).toEqual([
      "2 memory: insufficient memory (need 4096 MB, best has 3072 MB)",
    ]);
  });

  it("applies the node's overcommit factor to memory and CPU but not to disk", () => {
    const over = node("over", {
      capacity: { memoryMb: 4096, cpu: 2, diskMb: 1000 },
      overcommit: 2,
    });
    expect(placedOn(place({ resources: { memoryMb: 8192, cpu: 4 } }, [over]))).toBe("over");
    expect(place({ resources: { memoryMb: 8193 } }, [over]).placed).toBe(false);
    expect(place({ resources: { memoryMb: 0, cpu: 4.5 } }, [over]).placed).toBe(false);
    const disk = place({ resources: { memoryMb: 0, diskMb: 1001 } }, [over]);
    expect(reasons(disk)).toEqual(["1 disk: insufficient disk (need 1001 MB, best has 1000 MB)"]);
  });

  it("rejects nodes without enough CPU, with fractional cores in words", () => {
    const nodes = [node("a", { allocated: { memoryMb: 0, cpu: 2.5, diskMb: 0 } })];
    const result = place({ resources: { memoryMb: 0, cpu: 2 } }, nodes);
    expect(reasons(result)).toEqual(["1 cpu: insufficient CPU (need 2 cores, best has 1.5)"]);
  });

  it("fits exactly what is free, despite floating-point sums of fractional CPUs", () => {
    const nodes = [node("a", { capacity: { memoryMb: 1024, cpu: 0.3, diskMb: 0 } })];
    const requests = [0.1, 0.1, 0.1].map((cpu) => ({ resources: { memoryMb: 0, cpu } }));
    const results = createScheduler(nodes).placeBatch(requests);
    expect(results.map((r) => r.placed)).toEqual([true, true, true]);
    expect(createScheduler(nodes).placeBatch([...requests, requests[0]!])[3]!.placed).toBe(false);
  });
});

describe("runtime filter", () => {
  it("places only where the requested runtime is offered", () => {
    const nodes = [node("proc", { runtimes: ["process"] }), node("dock", { runtimes: ["docker"] })];
    expect(placedOn(place({ ...small, runtime: "docker" }, nodes))).toBe("dock");
    const none = place({ ...small, runtime: "firecracker" }, nodes);
    expect(reasons(none)).toEqual(["2 runtime: runtime firecracker not offered"]);
  });

  it("ignores runtimes when the request names none", () => {
    expect(placedOn(place(small, [node("none", { runtimes: [] })]))).toBe("none");
  });
});

describe("port filter", () => {
  it("hands out the lowest free dynamic ports, skipping used and reserved ones", () => {
    const nodes = [node("a", { usedPorts: [30000, 30002], reservedPorts: [30001] })];
    const result = place({ ...small, ports: [{ name: "game" }, { name: "query" }] }, nodes);
    expect(result.placed && result.ports).toEqual({ game: 30003, query: 30004 });
  });

  it("honours a static port and never gives it out dynamically too", () => {
    const nodes = [node("a")];
    const result = place(
      { ...small, ports: [{ name: "query" }, { name: "game", port: 30000 }] },
      nodes,
    );
    expect(result.placed && result.ports).toEqual({ query: 30001, game: 30000 });
  });

  it("rejects nodes where a static port is taken", () => {
    const nodes = [
      node("a", { usedPorts: [25565] }),
      node("b", { reservedPorts: [25565] }),
      node("c"),
    ];
    const result = place({ ...small, ports: [{ name: "game", port: 25565 }] }, nodes);
    expect(placedOn(result)).toBe("c");
    const none = place({ ...small, ports: [{ name: "game", port: 25565 }] }, nodes.slice(0, 2));
    expect(reasons(none)).toEqual(["2 ports: port 25565 already in use"]);
  });

  it("counts a free static port inside the range against the dynamic ones", () => {
    const nodes = [node("a", { portRange: { from: 30000, to: 30001 } })];
    const ok = place({ ...small, ports: [{ name: "a" }, { name: "b" }] }, nodes);
    expect(ok.placed).toBe(true);
    const tight = place(
      { ...small, ports: [{ name: "a" }, { name: "b", port: 30000 }, { name: "c" }] },
      nodes,
    );
    expect(reasons(tight)).toEqual(["1 ports: not enough free ports (need 2, best has 1)"]);
  });

  it("places static ports on a node without a dynamic range, but no dynamic ones", () => {
    const { portRange: _range, ...bare } = node("bare");
    expect(place({ ...small, ports: [{ name: "game", port: 7777 }] }, [bare]).placed).toBe(true);
    const result = place({ ...small, ports: [{ name: "game" }] }, [bare]);
    expect(reasons(result)).toEqual(["1 ports: not enough free ports (need 1, best has 0)"]);
  });

  it("never hands out a port twice within a batch", () => {
    const nodes = [node("a", { portRange: { from: 30000, to: 30004 } })];
    const requests = Array.from({ length: 3 }, () => ({
      resources: { memoryMb: 1 },
      ports: [{ name: "game" }, { name: "query" }],
    }));
    const results = createScheduler(nodes).placeBatch(requests);
    expect(results.map((r) => (r.placed ? r.ports : r.unplaced))).toEqual([
      { game: 30000, query: 30001 },
      { game: 30002, query: 30003 },
      "no node fits: 1 node: not enough free ports (need 2, best has 1)",
    ]);
  });
});

describe("anti-affinity filter", () => {
  it("allows at most N instances of the template per node", () => {
    const nodes = [
      node("full", { templateCounts: { mc: 2 } }),
      node("one", { templateCounts: { mc: 1 } }),
    ];
    const request = { ...small, templateName: "mc", antiAffinity: { maxPerNode: 2 } };
    const [first, second] = createScheduler(nodes).placeBatch([request, request]);
    expect(placedOn(first!)).toBe("one");
    expect(second!.placed).toBe(false);
    expect(reasons(second!)).toEqual([
      "2 anti-affinity: already at the limit of 2 instances of mc per node",
    ]);
  });

  it("counts only the request's template", () => {
    const nodes = [node("a", { templateCounts: { other: 9 } })];
    const request = { ...small, templateName: "mc", antiAffinity: { maxPerNode: 1 } };
    expect(place(request, nodes).placed).toBe(true);
  });
});

describe("spread cap", () => {
  it("filters nodes whose label value already holds the maximum", () => {
    const nodes = [
      node("eu-1", { labels: { region: "eu" }, templateCounts: { mc: 2 } }),
      node("eu-2", { labels: { region: "eu" } }),
      node("us-1", { labels: { region: "us" }, templateCounts: { mc: 1 } }),
    ];
    const request = {
      ...small,
      templateName: "mc",
      spread: [{ label: "region", maxPerValue: 2 }],
    };
    const [first, second] = createScheduler(nodes).placeBatch([request, request]);
    expect(placedOn(first!)).toBe("us-1");
    expect(reasons(second!)).toEqual([
      "3 spread: already at the limit of 2 instances of mc per region value",
    ]);
  });

  it("does not cap nodes that lack the label", () => {
    const nodes = [
      node("bare"),
      node("eu", { labels: { region: "eu" }, templateCounts: { mc: 5 } }),
    ];
    const request = { ...small, templateName: "mc", spread: [{ label: "region", maxPerValue: 1 }] };
    expect(placedOn(place(request, nodes))).toBe("bare");
  });
});

describe("custom filters", () => {
  it("run after the built-in ones and count nodes per reason", () => {
    const maintenance: SchedulerFilter = {
      name: "maintenance",
      check: (view) =>
        view.node.labels?.maintenance === "yes" ? "in a maintenance window" : undefined,
    };
    const nodes = [
      node("a", { labels: { maintenance: "yes" } }),
      node("b", { labels: { maintenance: "yes" } }),
      node("c", { status: "OFFLINE", labels: { maintenance: "yes" } }),
      node("d"),
    ];
    const result = place(small, nodes, { filters: [maintenance], exhaustive: true });
    expect(placedOn(result)).toBe("d");
    expect(reasons(result)).toEqual([
      "1 status: offline",
      "2 maintenance: in a maintenance window",
    ]);
    expect(place(small, nodes.slice(0, 3), { filters: [maintenance] }).placed).toBe(false);
  });

  it("see the node as it is within a batch", () => {
    const seen: number[] = [];
    const probe: SchedulerFilter = {
      name: "probe",
      check: (view) => {
        seen.push(view.free.memoryMb, view.freePortCount, view.instancesOf("mc"));
        return view.isPortFree(30000) ? undefined : "port 30000 is taken";
      },
    };
    const nodes = [node("a")];
    const request = {
      templateName: "mc",
      resources: { memoryMb: 1024 },
      ports: [{ name: "game" }],
    };
    const [first, second] = createScheduler(nodes, { filters: [probe] }).placeBatch([
      request,
      request,
    ]);
    expect(first!.placed).toBe(true);
    expect(seen.slice(0, 3)).toEqual([8192, 10, 0]);
    expect(seen.slice(3, 6)).toEqual([7168, 9, 1]);
    expect(reasons(second!)).toEqual(["1 probe: port 30000 is taken"]);
  });
});
