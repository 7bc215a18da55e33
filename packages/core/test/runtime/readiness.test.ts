import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { NotFoundError } from "../../src/errors/orchestrator-error.js";
import type {
  Runtime,
  RuntimeExit,
  RuntimeInstanceInfo,
  RuntimeLogOptions,
} from "../../src/ports/runtime.js";
import { defineRuntimeCapabilities } from "../../src/ports/runtime.js";
import { directorySize } from "../../src/runtime/directory-size.js";
import { ExitListeners } from "../../src/runtime/exit-listeners.js";
import { exitStatusSignal, signalExitStatus, signalNumber } from "../../src/runtime/exit-status.js";
import { LogBacklog } from "../../src/runtime/log-backlog.js";
import {
  ReadinessError,
  readinessCheckFromDefinition,
  waitForLogLine,
  waitForTcpPort,
  waitUntilReady,
} from "../../src/runtime/readiness.js";

/** Just enough of a runtime for readiness: one instance, a backlog, exit listeners. */
class ScriptedRuntime implements Runtime {
  readonly kind = "scripted";
  readonly capabilities = defineRuntimeCapabilities();
  readonly backlog = new LogBacklog();
  readonly exits = new ExitListeners();
  info: RuntimeInstanceInfo = {
    instanceId: "i",
    status: "running",
    labels: {},
    ports: [{ name: "game", protocol: "tcp", hostPort: 1 }],
    handle: "1",
    startedAt: new Date(1000),
    finishedAt: null,
    exitCode: null,
    signal: null,
  };
  address: { host: string; port: number } | null = null;

  say(text: string, at = new Date(2000)) {
    this.backlog.push({ stream: "stdout", line: text, at });
  }
  exit(exitCode: number) {
    this.info = { ...this.info, status: "exited", exitCode };
    this.exits.emit({
      instanceId: "i",
      exitCode,
      signal: exitStatusSignal(exitCode),
      requested: false,
      at: new Date(),
    });
  }
  async inspect(id: string) {
    return id === "i" ? this.info : null;
  }
  async logs(_id: string, options?: RuntimeLogOptions) {
    return this.backlog.read(options);
  }
  async onExit(listener: (exit: RuntimeExit) => void, options?: { signal?: AbortSignal }) {
    return this.exits.add(listener, options?.signal);
  }
  async portAddress() {
    if (!this.address) throw new Error("no address");
    return this.address;
  }
  create(): never {
    throw new Error("unused");
  }
  start = this.create;
  stop = this.create;
  kill = this.create;
  remove = this.create;
  list = this.create;
  stats = this.create;
  sendInput = this.create;
}

let server: Server | null = null;
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(null)));
  server = null;
});

async function listen(): Promise<number> {
  server = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("no address");
  return address.port;
}

async function freePort(): Promise<number> {
  const port = await listen();
  await new Promise((resolve) => server!.close(resolve));
  server = null;
  return port;
}

describe("readinessCheckFromDefinition", () => {
  it("maps a template's readiness to a check and a timeout", () => {
    expect(readinessCheckFromDefinition({ log: "listening on", timeoutSeconds: 30 })).toEqual({
      check: { kind: "log", pattern: /listening on/ },
      timeoutMs: 30_000,
    });
    expect(readinessCheckFromDefinition({ tcp: "game", timeoutSeconds: 0.5 })).toEqual({
      check: { kind: "tcp", port: "game" },
      timeoutMs: 500,
    });
    expect(readinessCheckFromDefinition({ timeoutSeconds: 1 }).check).toEqual({ kind: "none" });
  });

  it("refuses a broken regex, two checks or no timeout", () => {
    expect(() => readinessCheckFromDefinition({ log: "(", timeoutSeconds: 1 })).toThrow(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
    expect(() => readinessCheckFromDefinition({ log: "a", tcp: "b", timeoutSeconds: 1 })).toThrow(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
    expect(() => readinessCheckFromDefinition({ timeoutSeconds: 0 })).toThrow(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
  });
});

describe("waitUntilReady", () => {
  it("is ready on a matching log line of the current run only", async () => {
    const runtime = new ScriptedRuntime();
    runtime.say("Done! (previous run)", new Date(500)); // before startedAt: ignored
    runtime.say("loading");
    const waiting = waitUntilReady(
      runtime,
      "i",
      { kind: "log", pattern: /^Done!/g },
      { timeoutMs: 5000 },
    );
    setImmediate(() => runtime.say("Done! (4.2s)"));
    const result = await waiting;
    expect(result.check).toBe("log");
    expect(result.line?.line).toBe("Done! (4.2s)");
    expect(runtime.backlog.followerCount).toBe(0);
    expect(runtime.exits.size).toBe(0);
  });

  it("fails with reason 'exited' when the server exits first", async () => {
    const runtime = new ScriptedRuntime();
    const waiting = waitUntilReady(
      runtime,
      "i",
      { kind: "log", pattern: /ready/ },
      {
        timeoutMs: 5000,
      },
    );
    setImmediate(() => runtime.exit(3));
    const error = await waiting.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ReadinessError);
    expect(error).toMatchObject({ reason: "exited", code: "UNAVAILABLE", exit: { exitCode: 3 } });
    expect(runtime.exits.size).toBe(0);
  });

  it("fails with reason 'timeout', and at once for an exited or unknown instance", async () => {
    const runtime = new ScriptedRuntime();
    await expect(
      waitUntilReady(runtime, "i", { kind: "log", pattern: /never/ }, { timeoutMs: 30 }),
    ).rejects.toMatchObject({ reason: "timeout" });
    expect(runtime.backlog.followerCount).toBe(0);
    runtime.info = { ...runtime.info, status: "exited", exitCode: 1 };
    await expect(
      waitUntilReady(runtime, "i", { kind: "none" }, { timeoutMs: 1000 }),
    ).rejects.toMatchObject({ reason: "exited" });
    await expect(
      waitUntilReady(runtime, "x", { kind: "none" }, { timeoutMs: 1000 }),
    ).rejects.toBeInstanceOf(NotFoundError);
  });

  it("honours the caller's AbortSignal", async () => {
    const runtime = new ScriptedRuntime();
    const controller = new AbortController();
    const waiting = waitUntilReady(
      runtime,
      "i",
      { kind: "log", pattern: /x/ },
      {
        timeoutMs: 5000,
        signal: controller.signal,
      },
    );
    controller.abort(new Error("agent shutting down"));
    await expect(waiting).rejects.toThrow("agent shutting down");
    await expect(
      waitUntilReady(runtime, "i", { kind: "none" }, { timeoutMs: 10, signal: controller.signal }),
    ).rejects.toThrow("agent shutting down");
  });

  it("is ready when the named port accepts a TCP connection", async () => {
    const runtime = new ScriptedRuntime();
    const port = await freePort();
    runtime.address = { host: "127.0.0.1", port };
    const waiting = waitUntilReady(
      runtime,
      "i",
      { kind: "tcp", port: "game" },
      {
        timeoutMs: 5000,
        pollIntervalMs: 10,
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 30)); // a few refused attempts first
    server = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server!.listen(port, "127.0.0.1", resolve));
    await expect(waiting).resolves.toMatchObject({ check: "tcp", address: { port } });
    await expect(
      waitUntilReady(runtime, "i", { kind: "tcp", port: "nope" }, { timeoutMs: 100 }),
    ).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
  });

  it("is ready at once with none", async () => {
    await expect(
      waitUntilReady(new ScriptedRuntime(), "i", { kind: "none" }, { timeoutMs: 100 }),
    ).resolves.toMatchObject({ check: "none" });
  });
});

describe("waitForLogLine and waitForTcpPort", () => {
  it("waits on any line source and closes it afterwards", async () => {
    const backlog = new LogBacklog();
    backlog.push({ stream: "stderr", line: "[INFO] Server started", at: new Date() });
    const line = await waitForLogLine(
      (signal) => backlog.read({ follow: true, signal }),
      /started/,
      { timeoutMs: 1000 },
    );
    expect(line.stream).toBe("stderr");
    expect(backlog.followerCount).toBe(0);
    await expect(
      waitForLogLine((signal) => backlog.read({ follow: true, signal }), /never/, {
        timeoutMs: 20,
      }),
    ).rejects.toMatchObject({ reason: "timeout" });
  });

  it("times out on a closed port and succeeds on an open one", async () => {
    const closed = await freePort();
    await expect(
      waitForTcpPort("127.0.0.1", closed, { timeoutMs: 50, pollIntervalMs: 10 }),
    ).rejects.toMatchObject({ reason: "timeout" });
    const open = await listen();
    await expect(waitForTcpPort("127.0.0.1", open, { timeoutMs: 1000 })).resolves.toBeUndefined();
  });
});

describe("exit statuses", () => {
  it("maps shell-convention statuses to signals and back", () => {
    expect(signalNumber("SIGKILL")).toBe(9);
    expect(signalNumber("SIGNOPE")).toBeNull();
    expect(signalExitStatus("SIGTERM")).toBe(143);
    expect(exitStatusSignal(137)).toBe("SIGKILL");
    expect(exitStatusSignal(3)).toBeNull();
    expect(exitStatusSignal(128)).toBeNull();
    expect(exitStatusSignal(null)).toBeNull();
  });
});

describe("ExitListeners", () => {
  it("delivers to every listener, isolates a throwing one, unsubscribes by signal", () => {
    const errors: unknown[] = [];
    const listeners = new ExitListeners((error) => errors.push(error));
    const seen: number[] = [];
    const controller = new AbortController();
    listeners.add(() => {
      throw new Error("boom");
    });
    listeners.add((exit) => seen.push(exit.exitCode ?? -1), controller.signal);
    const exit = { instanceId: "i", exitCode: 1, signal: null, requested: false, at: new Date() };
    listeners.emit(exit);
    controller.abort();
    listeners.emit(exit);
    expect(seen).toEqual([1]);
    expect(errors).toHaveLength(2);
    expect(listeners.size).toBe(1);
    expect(listeners.add(() => {}, controller.signal)).toBeTypeOf("function");
    expect(listeners.size).toBe(1);
  });
});

describe("directorySize", () => {
  it("counts allocated bytes, hardlinks once, never follows symlinks", async () => {
    const dir = await mkdtemp(join(tmpdir(), "orch-size-"));
    try {
      await mkdir(join(dir, "sub"));
      await writeFile(join(dir, "sub", "a"), Buffer.alloc(64 * 1024, 1));
      const { link } = await import("node:fs/promises");
      await link(join(dir, "sub", "a"), join(dir, "b"));
      await symlink("/usr", join(dir, "usr"));
      const size = await directorySize(dir);
      expect(size.truncated).toBe(false);
      expect(size.entries).toBe(5);
      expect(size.bytes).toBeGreaterThanOrEqual(64 * 1024);
      expect(size.bytes).toBeLessThan(3 * 64 * 1024);
      expect((await directorySize(dir, { maxEntries: 2 })).truncated).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
