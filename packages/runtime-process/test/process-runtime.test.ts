import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { guardPlugin, type RuntimeInstanceSpec, waitUntilReady } from "@orchestrator/core";
import { describeRuntimeConformance, RUNTIME_CONFORMANCE_SERVER } from "@orchestrator/core/testing";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findCgroup2Mount } from "../src/cgroup-limits.js";
import { parseProcStat, readProcStat } from "../src/proc.js";
import { ProcessRuntime } from "../src/process-runtime.js";
import { DEFAULT_SERVER_PATH } from "../src/process-runtime-config.js";

describeRuntimeConformance("process", {
  create: ({ stateDirectory, instancesRoot }) =>
    new ProcessRuntime({ stateDirectory, instanceRoots: [instancesRoot], exitPollIntervalMs: 100 }),
  handleExists: async (info) => {
    const stat = await readProcStat(Number(info.handle));
    return stat !== null && stat.state !== "Z";
  },
});

describe("ProcessRuntime extras", () => {
  let base: string;
  let instances: string;
  let runtime: ProcessRuntime;
  const made: string[] = [];

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), "orch-process-runtime-"));
    instances = join(base, "instances");
    await mkdir(instances);
    runtime = new ProcessRuntime({
      stateDirectory: join(base, "state"),
      instanceRoots: [instances],
      exitPollIntervalMs: 100,
    });
  });

  afterAll(async () => {
    for (const id of made) await runtime.remove(id).catch(() => {});
    await runtime.destroy();
    await rm(base, { recursive: true, force: true });
  });

  async function spec(
    id: string,
    command: string[],
    extra: Partial<RuntimeInstanceSpec> = {},
  ): Promise<RuntimeInstanceSpec> {
    const workingDirectory = join(instances, id);
    await mkdir(workingDirectory, { recursive: true });
    await writeFile(join(workingDirectory, "server.sh"), RUNTIME_CONFORMANCE_SERVER);
    made.push(id);
    return {
      instanceId: id,
      command,
      env: { GREETING: "hi" },
      workingDirectory,
      ports: [],
      resources: { memoryMb: 32, cpu: 0.25, diskMb: 1 },
      labels: { test: "extras" },
      stop: { input: null, signal: "SIGTERM", timeoutSeconds: 5 },
      ...extra,
    };
  }

  async function lines(id: string): Promise<string[]> {
    const result: string[] = [];
    for await (const line of await runtime.logs(id)) result.push(line.line);
    return result;
  }

  it("gives the server exactly the spec's environment, its own session, the instance dir as cwd", async () => {
    process.env.ORCH_CANARY_SECRET = "agent-secret";
    try {
      const s = await spec("env", ["sh", "-e", "server.sh"], {
        env: { GREETING: "hi", ODD_VALUE: "a b ; $(rm -rf /) `id`" },
      });
      await runtime.create(s);
      const info = await runtime.start(s.instanceId);
      await waitUntilReady(
        runtime,
        s.instanceId,
        { kind: "log", pattern: /^ready/ },
        {
          timeoutMs: 10_000,
        },
      );
      const pid = Number(info.handle);
      const environ = (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0").filter(Boolean);
      // Values are data: nothing in them was run by a shell.
      expect(environ.sort()).toEqual([
        "GREETING=hi",
        "ODD_VALUE=a b ; $(rm -rf /) `id`",
        `PATH=${DEFAULT_SERVER_PATH}`,
      ]);
      expect(environ.some((entry) => entry.startsWith("ORCH_"))).toBe(false);
      const stat = await readProcStat(pid);
      expect(stat?.session).toBe(pid);
      expect(stat?.pgrp).toBe(pid);
      expect((await readProcStat(process.pid))?.session).not.toBe(pid);
      expect(await readlink(`/proc/${pid}/cwd`)).toBe(s.workingDirectory);
      await runtime.remove(s.instanceId);
    } finally {
      delete process.env.ORCH_CANARY_SECRET;
    }
  });

  it("never mistakes a reused pid for its server", async () => {
    const s = await spec("reused", ["sh", "server.sh"]);
    await runtime.create(s);
    const recordPath = join(base, "state", s.instanceId, "instance.json");
    const record = JSON.parse(await readFile(recordPath, "utf8"));
    // Pretend the server had our pid, but started at another time.
    const ours = await readProcStat(process.pid);
    record.run = {
      pid: process.pid,
      startTicks: ours!.startTicks + 1,
      startedAt: new Date().toISOString(),
      cgroup: false,
    };
    await writeFile(recordPath, JSON.stringify(record));
    const other = new ProcessRuntime({
      stateDirectory: join(base, "state"),
      instanceRoots: [instances],
    });
    try {
      const info = await other.inspect(s.instanceId);
      expect(info).toMatchObject({ status: "exited", handle: String(process.pid), exitCode: null });
      // A kill must not reach the innocent process holding that pid (this test run).
      await other.kill(s.instanceId);
      await other.remove(s.instanceId);
    } finally {
      await other.destroy();
    }
  });

  it("finds a server again after the agent process itself exited", async () => {
    const s = await spec("orphan", ["sh", "server.sh", "serve"]);
    const stateDirectory = join(base, "orphan-state");
    const script = join(base, "agent.mts");
    await writeFile(
      script,
      `import { ProcessRuntime } from ${JSON.stringify(new URL("../src/index.ts", import.meta.url).pathname)};
import { waitUntilReady } from ${JSON.stringify(new URL("../../core/src/index.ts", import.meta.url).pathname)};
const runtime = new ProcessRuntime({ stateDirectory: ${JSON.stringify(stateDirectory)}, instanceRoots: [${JSON.stringify(instances)}] });
const spec = ${JSON.stringify(s)};
await runtime.create(spec);
const info = await runtime.start(spec.instanceId);
await waitUntilReady(runtime, spec.instanceId, { kind: "log", pattern: /^ready/ }, { timeoutMs: 10000 });
console.log(info.handle);
process.exit(0);
`,
    );
    // A separate agent process that starts the server, then exits.
    const agent = await execa(
      process.execPath,
      ["--conditions=@orchestrator/source", "--import", "tsx", script],
      { cwd: new URL("../../..", import.meta.url).pathname, reject: false },
    );
    expect(agent.exitCode, agent.stderr).toBe(0);
    const handle = agent.stdout.trim();
    const next = new ProcessRuntime({
      stateDirectory,
      instanceRoots: [instances],
      exitPollIntervalMs: 50,
    });
    try {
      const [found] = await next.list({ test: "extras" });
      expect(found).toMatchObject({ instanceId: s.instanceId, status: "running", handle });
      // Its parent is gone: the exit status still comes through the shim's file.
      expect((await readProcStat(Number(handle)))?.ppid).not.toBe(process.pid);
      const exits: (number | null)[] = [];
      await next.onExit((exit) => exits.push(exit.exitCode));
      await next.sendInput(s.instanceId, "hello orphan");
      await waitUntilReady(
        next,
        s.instanceId,
        { kind: "log", pattern: /^echo: hello orphan$/ },
        {
          timeoutMs: 10_000,
        },
      );
      const stopped = await next.stop(s.instanceId);
      expect(stopped).toMatchObject({ status: "exited", exitCode: 0 });
      expect(exits).toEqual([0]);
      const text: string[] = [];
      for await (const line of await next.logs(s.instanceId)) text.push(line.line);
      expect(text).toEqual(expect.arrayContaining(["ready to serve", "echo: hello orphan"]));
      await next.remove(s.instanceId);
    } finally {
      await next.destroy();
    }
  }, 30_000);

  it("applies memory, CPU and pids limits through a cgroup v2 directory", async () => {
    // A stand-in for a delegated cgroup: the same files, as a plain directory.
    const cgroup = join(base, "cgroup");
    await mkdir(cgroup);
    await writeFile(join(cgroup, "cgroup.controllers"), "cpuset cpu io memory pids\n");
    await writeFile(join(cgroup, "cgroup.subtree_control"), "");
    const limited = new ProcessRuntime({
      stateDirectory: join(base, "cgroup-state"),
      instanceRoots: [instances],
      cgroup,
      pidsLimit: 64,
    });
    try {
      await limited.init();
      expect(limited.capabilities.supportsResourceLimits).toBe(true);
      const s = await spec("limited", ["sh", "server.sh"], {
        resources: { memoryMb: 48, cpu: 0.5, diskMb: 1 },
      });
      await limited.create(s);
      const info = await limited.start(s.instanceId);
      await waitUntilReady(
        limited,
        s.instanceId,
        { kind: "log", pattern: /^ready/ },
        {
          timeoutMs: 10_000,
        },
      );
      const dir = join(cgroup, s.instanceId);
      expect(await readFile(join(dir, "memory.max"), "utf8")).toBe(String(48 * 1024 * 1024));
      expect(await readFile(join(dir, "cpu.max"), "utf8")).toBe("50000 100000");
      expect(await readFile(join(dir, "pids.max"), "utf8")).toBe("64");
      // The shim joined the cgroup before the server started.
      expect((await readFile(join(dir, "cgroup.procs"), "utf8")).trim()).toBe(info.handle);
      await limited.remove(s.instanceId);
    } finally {
      await limited.destroy();
    }
    await expect(
      new ProcessRuntime({
        stateDirectory: join(base, "cgroup-state-2"),
        cgroup: join(base, "no-cgroup-here"),
      }).init(),
    ).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
  });

  it("declares resource limits unsupported without a cgroup, and finds cgroup2 mounts", async () => {
    // Wrapped by core's guard, as the agent uses it: lazy init, every method async.
    const plain = guardPlugin(
      new ProcessRuntime({ stateDirectory: join(base, "plain-state"), cgroup: false }),
      "process runtime",
    );
    expect(await plain.list()).toEqual([]);
    const unsubscribe = await plain.onExit(() => {});
    unsubscribe();
    expect(plain.capabilities).toEqual({
      supportsStats: true,
      supportsInput: true,
      supportsResourceLimits: false,
    });
    await plain.destroy();
    await expect(plain.list()).rejects.toMatchObject({ code: "PLUGIN_STATE" });
    expect(
      findCgroup2Mount(
        "25 30 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n" +
          "26 30 0:23 / /proc rw - proc proc rw\n",
      ),
    ).toBe("/sys/fs/cgroup");
    expect(findCgroup2Mount("26 30 0:23 / /proc rw - proc proc rw\n")).toBeNull();
  });

  it("bounds log files on disk while the backlog keeps the latest lines", async () => {
    const capped = new ProcessRuntime({
      stateDirectory: join(base, "capped-state"),
      instanceRoots: [instances],
      maxLogFileBytes: 2048,
      logBacklog: { maxLines: 50 },
    });
    try {
      const s = await spec("chatty", ["sh", "server.sh"]);
      await capped.create(s);
      await capped.start(s.instanceId);
      await waitUntilReady(
        capped,
        s.instanceId,
        { kind: "log", pattern: /^ready/ },
        {
          timeoutMs: 10_000,
        },
      );
      for (let i = 0; i < 60; i += 1)
        await capped.sendInput(s.instanceId, `line ${i} ${"x".repeat(60)}`);
      await waitUntilReady(
        capped,
        s.instanceId,
        { kind: "log", pattern: /^echo: line 59 / },
        { timeoutMs: 10_000 },
      );
      const kept: string[] = [];
      for await (const line of await capped.logs(s.instanceId)) kept.push(line.line);
      expect(kept.length).toBeLessThanOrEqual(50);
      expect(kept.at(-1)).toMatch(/^echo: line 59 /);
      const { size } = await import("node:fs/promises").then((fs) =>
        fs.stat(join(base, "capped-state", s.instanceId, "stdout.log")),
      );
      expect(size).toBeLessThan(2048 + 8192);
      await capped.remove(s.instanceId);
    } finally {
      await capped.destroy();
    }
  });

  it("refuses a program it cannot find, and a state directory another agent holds", async () => {
    const s = await spec("missing-program", ["no-such-program-xyz"]);
    await runtime.create(s);
    await expect(runtime.start(s.instanceId)).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    expect(await runtime.inspect(s.instanceId)).toMatchObject({ status: "created" });
    await runtime.remove(s.instanceId);

    const held = join(base, "held-state");
    await mkdir(held);
    await writeFile(join(held, ".runtime.lock"), "1"); // pid 1 is alive and is not us
    await expect(new ProcessRuntime({ stateDirectory: held }).init()).rejects.toMatchObject({
      code: "CONFLICT",
    });
    expect(() => new ProcessRuntime({ stateDirectory: "relative/dir" })).toThrow(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
  });

  it("reports stats from /proc: CPU, memory, instance dir size", async () => {
    const s = await spec("stats", ["sh", "server.sh"]);
    await runtime.create(s);
    await runtime.start(s.instanceId);
    await waitUntilReady(
      runtime,
      s.instanceId,
      { kind: "log", pattern: /^ready/ },
      {
        timeoutMs: 10_000,
      },
    );
    const first = await runtime.stats(s.instanceId);
    const second = await runtime.stats(s.instanceId);
    expect(first.memoryBytes).toBeGreaterThan(100 * 1024);
    expect(second.cpu).toBeGreaterThanOrEqual(0);
    expect(second.cpu).toBeLessThan(4);
    expect(first.diskBytes).toBeGreaterThan(0);
    expect(await lines(s.instanceId)).toContain("booting hi");
    await runtime.remove(s.instanceId);
    await expect(runtime.stats(s.instanceId)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});

describe("parseProcStat", () => {
  it("reads the fields after a command name holding spaces and parentheses", () => {
    const fields = Array.from({ length: 50 }, (_, index) => String(index + 3));
    fields[0] = "S";
    const stat = parseProcStat(`4242 (my (odd) name) ${fields.join(" ")}`);
    expect(stat).toMatchObject({
      pid: 4242,
      state: "S",
      ppid: 4,
      pgrp: 5,
      session: 6,
      cpuTicks: 14 + 15,
      childrenCpuTicks: 16 + 17,
      startTicks: 22,
    });
    expect(parseProcStat("garbage")).toBeNull();
  });
});
