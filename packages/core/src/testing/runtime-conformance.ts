/**
 * THE conformance suite of the `Runtime` port. Every runtime (process,
 * Docker, yours) runs it from its own tests with a harness; a runtime is done
 * when it passes. The test server is a POSIX `sh` script (busybox-compatible)
 * written into each instance directory, so the same steps run on a host shell
 * and in a minimal container image.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrchestratorError } from "../errors/orchestrator-error.js";
import type {
  Runtime,
  RuntimeExit,
  RuntimeInstanceInfo,
  RuntimeInstanceSpec,
  RuntimeLogLine,
} from "../ports/runtime.js";
import { waitForLogLine, waitUntilReady } from "../runtime/readiness.js";

/** Where a runtime under test keeps its state; the same values again mean "after a restart". */
export interface RuntimeConformanceContext {
  /** A directory for the runtime's own state (pid files, logs); unused by engines that keep it. */
  stateDirectory: string;
  /** The only directory instance working directories may lie beneath (the runtime's policy). */
  instancesRoot: string;
}

/** How the suite drives one runtime implementation. */
export interface RuntimeConformanceHarness {
  /**
   * A new runtime over `context`. Called once at the start and again with the
   * same context after `destroy()` of the first, to simulate an agent restart.
   * The runtime's policy must confine working directories to `instancesRoot`.
   */
  create(context: RuntimeConformanceContext): Runtime | Promise<Runtime>;
  /** True while the process/container behind `info.handle` exists anywhere (checked after remove). */
  handleExists(info: RuntimeInstanceInfo): Promise<boolean>;
  /** Merged into every spec, e.g. `{ image }` for an image runtime. */
  specDefaults?: Partial<RuntimeInstanceSpec>;
  /** An image the runtime's allow-list refuses; set for image runtimes. */
  refusedImage?: string;
  /** Why the suite cannot run here (e.g. no Docker engine); shown as the skipped test's name. */
  skipReason?: string | null;
  /** Upper bound for one server to become ready (default 15 s). */
  readyTimeoutMs?: number;
}

/**
 * The test server. Modes: `serve` (stops on the `stop` input or on SIGTERM),
 * `ignore-stop` (ignores SIGTERM/SIGINT and the `stop` input: only a kill ends
 * it), `crash` (exits with status 3 once ready). Every other input line is
 * echoed back as `echo: <line>`.
 */
export const RUNTIME_CONFORMANCE_SERVER = `# Orchestrator runtime conformance server (POSIX sh, busybox-compatible)
mode="\${1:-serve}"
echo "booting $GREETING"
echo "warming up on stderr" >&2
case "$mode" in
  crash) echo "ready to serve"; echo "crashing now" >&2; exit 3 ;;
  ignore-stop) trap '' TERM INT ;;
  *) trap 'echo "got TERM, bye"; exit 0' TERM ;;
esac
echo "ready to serve"
while IFS= read -r line; do
  case "$line" in
    stop) if [ "$mode" != ignore-stop ]; then echo "stopping on request"; exit 0; fi ;;
    *) echo "echo: $line" ;;
  esac
done
while :; do sleep 1; done
`;

const SECOND = 1000;

/** Collects what a non-following `logs()` returns. */
async function collect(lines: AsyncIterable<RuntimeLogLine>): Promise<RuntimeLogLine[]> {
  const result: RuntimeLogLine[] = [];
  for await (const line of lines) result.push(line);
  return result;
}

/** Subscribes now; `exit` resolves with the next exit of `instanceId` seen by `runtime`. */
async function nextExit(
  runtime: Runtime,
  instanceId: string,
): Promise<{ exit: Promise<RuntimeExit> }> {
  let resolve!: (exit: RuntimeExit) => void;
  const exit = new Promise<RuntimeExit>((done) => {
    resolve = done;
  });
  const unsubscribe = await runtime.onExit((observed) => {
    if (observed.instanceId !== instanceId) return;
    unsubscribe();
    resolve(observed);
  });
  return { exit };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error, `expected an OrchestratorError ${code}`).not.toBeNull();
  expect(OrchestratorError.isInstance(error), String(error)).toBe(true);
  expect((error as OrchestratorError).code).toBe(code);
}

/**
 * Registers the runtime conformance tests under `describe(name)`. The steps
 * need a real engine (they start real processes or containers) and take a few
 * seconds; one of them waits for a stop timeout of one second on purpose.
 */
export function describeRuntimeConformance(name: string, harness: RuntimeConformanceHarness) {
  describe(`Runtime conformance: ${name}`, () => {
    if (harness.skipReason) {
      it.skip(harness.skipReason, () => {});
      return;
    }
    const run = randomBytes(4).toString("hex");
    const labels = { "conformance-run": run, "orchestrator/node": "conformance" };
    const readyTimeoutMs = harness.readyTimeoutMs ?? 15 * SECOND;
    const created = new Set<string>();
    let base = "";
    let context: RuntimeConformanceContext;
    let runtime: Runtime;

    beforeAll(async () => {
      base = await mkdtemp(join(tmpdir(), "orch-runtime-conformance-"));
      context = { stateDirectory: join(base, "state"), instancesRoot: join(base, "instances") };
      await mkdir(context.stateDirectory, { recursive: true });
      await mkdir(context.instancesRoot, { recursive: true });
      runtime = await harness.create(context);
      await runtime.init?.();
    });

    afterAll(async () => {
      if (runtime) {
        for (const id of created) await runtime.remove(id).catch(() => {});
        await runtime.destroy?.();
      }
      if (base) await rm(base, { recursive: true, force: true });
    });

    /** A fresh instance directory holding the server script, and a spec for it. */
    async function prepare(
      label: string,
      mode: "serve" | "ignore-stop" | "crash",
      stop: Partial<RuntimeInstanceSpec["stop"]> = {},
    ): Promise<RuntimeInstanceSpec> {
      const instanceId = `conf-${run}-${label}`;
      const workingDirectory = join(context.instancesRoot, instanceId);
      await mkdir(workingDirectory, { recursive: true });
      await writeFile(join(workingDirectory, "server.sh"), RUNTIME_CONFORMANCE_SERVER);
      return {
        instanceId,
        command: ["sh", "server.sh", mode],
        env: { GREETING: "hello" },
        workingDirectory,
        ports: [],
        resources: { memoryMb: 64, cpu: 0.5, diskMb: 16 },
        labels: { ...labels, instance: instanceId },
        stop: {
          input: runtime.capabilities.supportsInput ? "stop" : null,
          signal: "SIGTERM",
          timeoutSeconds: 10,
          ...stop,
        },
        ...harness.specDefaults,
      };
    }

    async function createAndStart(spec: RuntimeInstanceSpec): Promise<RuntimeInstanceInfo> {
      created.add(spec.instanceId);
      await runtime.create(spec);
      const info = await runtime.start(spec.instanceId);
      await waitUntilReady(
        runtime,
        spec.instanceId,
        { kind: "log", pattern: /^ready to serve$/ },
        { timeoutMs: readyTimeoutMs },
      );
      return info;
    }

    async function removeAndCheckGone(info: RuntimeInstanceInfo): Promise<void> {
      await runtime.remove(info.instanceId);
      created.delete(info.instanceId);
      expect(await runtime.inspect(info.instanceId)).toBeNull();
      const listed = await runtime.list(labels);
      expect(listed.map((entry) => entry.instanceId)).not.toContain(info.instanceId);
      expect(await harness.handleExists(info)).toBe(false);
      // Removing again is not an error: destroy may be retried.
      await runtime.remove(info.instanceId);
    }

    it(
      "runs a server: ready by log line, logs, input, stats, graceful stop, restart, kill, remove",
      async () => {
        const spec = await prepare("main", "serve");
        const createdInfo = await runtime.create(spec);
        created.add(spec.instanceId);
        expect(createdInfo).toMatchObject({
          instanceId: spec.instanceId,
          status: "created",
          labels: spec.labels,
          startedAt: null,
          exitCode: null,
        });
        const started = await runtime.start(spec.instanceId);
        expect(started.status).toBe("running");
        expect(started.handle).not.toBe("");
        expect(started.startedAt).toBeInstanceOf(Date);
        const ready = await waitUntilReady(
          runtime,
          spec.instanceId,
          { kind: "log", pattern: /^ready to serve$/ },
          { timeoutMs: readyTimeoutMs },
        );
        expect(ready.line?.stream).toBe("stdout");
        // stdout and stderr are separate streams: the stderr line may come a moment later.
        const warning = await waitForLogLine(
          (signal) => runtime.logs(spec.instanceId, { follow: true, signal }),
          /^warming up on stderr$/,
          { timeoutMs: 10 * SECOND },
        );
        expect(warning.stream).toBe("stderr");

        const lines = await collect(await runtime.logs(spec.instanceId));
        expect(lines).toContainEqual(
          expect.objectContaining({ stream: "stdout", line: "booting hello" }),
        );
        expect(lines).toContainEqual(
          expect.objectContaining({ stream: "stderr", line: "warming up on stderr" }),
        );
        for (const line of lines) expect(line.at).toBeInstanceOf(Date);
        const tail = await collect(await runtime.logs(spec.instanceId, { tail: 1 }));
        expect(tail).toHaveLength(1);

        if (runtime.capabilities.supportsInput) {
          const echoed = waitForLogLine(
            (signal) => runtime.logs(spec.instanceId, { follow: true, tail: 0, signal }),
            /^echo: ping 1 ; rm -rf \/$/,
            { timeoutMs: 10 * SECOND },
          );
          await runtime.sendInput(spec.instanceId, "ping 1 ; rm -rf /");
          expect((await echoed).stream).toBe("stdout");
          await expectCode(runtime.sendInput(spec.instanceId, "two\nlines"), "VALIDATION_FAILED");
        }

        if (runtime.capabilities.supportsStats) {
          const stats = await runtime.stats(spec.instanceId);
          expect(stats.memoryBytes).toBeGreaterThan(0);
          expect(Number.isFinite(stats.cpu) && stats.cpu >= 0).toBe(true);
          expect(stats.at).toBeInstanceOf(Date);
        }

        const inspected = await runtime.inspect(spec.instanceId);
        expect(inspected).toMatchObject({ status: "running", handle: started.handle });
        const listed = await runtime.list({ instance: spec.instanceId });
        expect(listed.map((entry) => entry.instanceId)).toEqual([spec.instanceId]);
        expect((await runtime.list(labels)).length).toBeGreaterThanOrEqual(1);
        expect(await runtime.list({ ...labels, instance: "someone-else" })).toEqual([]);

        // Graceful stop: the stop input (or signal) ends it well before the timeout.
        const exited = await nextExit(runtime, spec.instanceId);
        const stopStarted = performance.now();
        const stopped = await runtime.stop(spec.instanceId);
        expect(performance.now() - stopStarted).toBeLessThan(8 * SECOND);
        expect(stopped).toMatchObject({ status: "exited", exitCode: 0, signal: null });
        expect(stopped.finishedAt).toBeInstanceOf(Date);
        expect(await withTimeout(exited.exit, 5 * SECOND, "exit event")).toMatchObject({
          instanceId: spec.instanceId,
          exitCode: 0,
          requested: true,
        });
        const afterStop = await collect(await runtime.logs(spec.instanceId));
        const farewell = runtime.capabilities.supportsInput
          ? "stopping on request"
          : "got TERM, bye";
        expect(afterStop.map((line) => line.line)).toContain(farewell);
        await expectCode(runtime.sendInput(spec.instanceId, "hello?"), "CONFLICT");
        expect(await runtime.stop(spec.instanceId)).toMatchObject({
          status: "exited",
          exitCode: 0,
        });

        // Start again: readiness counts only the new run's lines.
        const restarted = await runtime.start(spec.instanceId);
        expect(restarted.status).toBe("running");
        expect(restarted.startedAt!.getTime()).toBeGreaterThanOrEqual(stopped.startedAt!.getTime());
        const second = await waitUntilReady(
          runtime,
          spec.instanceId,
          { kind: "log", pattern: /^ready to serve$/ },
          { timeoutMs: readyTimeoutMs },
        );
        expect(second.line!.at.getTime()).toBeGreaterThanOrEqual(restarted.startedAt!.getTime());
        await expectCode(runtime.start(spec.instanceId), "CONFLICT");

        const killedExit = await nextExit(runtime, spec.instanceId);
        const killed = await runtime.kill(spec.instanceId);
        expect(killed).toMatchObject({ status: "exited", exitCode: 137, signal: "SIGKILL" });
        expect(await withTimeout(killedExit.exit, 5 * SECOND, "kill exit event")).toMatchObject({
          exitCode: 137,
          signal: "SIGKILL",
          requested: true,
        });

        await removeAndCheckGone(restarted);
      },
      60 * SECOND,
    );

    it(
      "stops by the stop signal within the timeout",
      async () => {
        const spec = await prepare("signal", "serve", { input: null, signal: "SIGTERM" });
        await createAndStart(spec);
        const started = performance.now();
        const stopped = await runtime.stop(spec.instanceId);
        expect(performance.now() - started).toBeLessThan(8 * SECOND);
        expect(stopped).toMatchObject({ status: "exited", exitCode: 0 });
        const lines = await collect(await runtime.logs(spec.instanceId));
        expect(lines.map((line) => line.line)).toContain("got TERM, bye");
        await removeAndCheckGone(stopped);
      },
      60 * SECOND,
    );

    it(
      "kills a server that ignores its stop once the stop timeout has passed",
      async () => {
        const spec = await prepare("stubborn", "ignore-stop", { timeoutSeconds: 1 });
        await createAndStart(spec);
        const exited = await nextExit(runtime, spec.instanceId);
        const started = performance.now();
        const stopped = await runtime.stop(spec.instanceId);
        const elapsed = performance.now() - started;
        expect(elapsed).toBeGreaterThanOrEqual(0.9 * SECOND);
        expect(elapsed).toBeLessThan(10 * SECOND);
        expect(stopped).toMatchObject({ status: "exited", exitCode: 137, signal: "SIGKILL" });
        expect(await withTimeout(exited.exit, 5 * SECOND, "exit event")).toMatchObject({
          exitCode: 137,
          signal: "SIGKILL",
          requested: true,
        });
        await removeAndCheckGone(stopped);
      },
      60 * SECOND,
    );

    it(
      "reports a crash with its exit code",
      async () => {
        const spec = await prepare("crash", "crash");
        created.add(spec.instanceId);
        await runtime.create(spec);
        const exited = await nextExit(runtime, spec.instanceId);
        await runtime.start(spec.instanceId);
        expect(await withTimeout(exited.exit, readyTimeoutMs, "crash exit event")).toMatchObject({
          instanceId: spec.instanceId,
          exitCode: 3,
          signal: null,
          requested: false,
        });
        const info = await runtime.inspect(spec.instanceId);
        expect(info).toMatchObject({ status: "exited", exitCode: 3, signal: null });
        // The crash's last words stay readable.
        const lines = await collect(await runtime.logs(spec.instanceId));
        expect(lines).toContainEqual(
          expect.objectContaining({ stream: "stderr", line: "crashing now" }),
        );
        await removeAndCheckGone(info!);
      },
      60 * SECOND,
    );

    it(
      "re-attaches after an agent restart: same server, logs, input and exit watching",
      async () => {
        const spec = await prepare("reattach", "serve");
        const before = await createAndStart(spec);
        await runtime.destroy?.();
        // Destroying the runtime (the agent going away) must leave the server running.
        expect(await harness.handleExists(before)).toBe(true);

        runtime = await harness.create(context);
        await runtime.init?.();
        const [found] = await runtime.list({ instance: spec.instanceId });
        expect(found).toMatchObject({
          instanceId: spec.instanceId,
          status: "running",
          handle: before.handle,
          labels: spec.labels,
        });
        expect(found!.startedAt!.getTime()).toBe(before.startedAt!.getTime());
        const backlog = await collect(await runtime.logs(spec.instanceId));
        expect(backlog.map((line) => line.line)).toContain("ready to serve");

        if (runtime.capabilities.supportsInput) {
          const echoed = waitForLogLine(
            (signal) => runtime.logs(spec.instanceId, { follow: true, tail: 0, signal }),
            /^echo: after restart$/,
            { timeoutMs: 10 * SECOND },
          );
          await runtime.sendInput(spec.instanceId, "after restart");
          await echoed;
        }

        const exited = await nextExit(runtime, spec.instanceId);
        const stopped = await runtime.stop(spec.instanceId);
        expect(stopped).toMatchObject({ status: "exited", exitCode: 0, handle: before.handle });
        expect(
          await withTimeout(exited.exit, 5 * SECOND, "exit event after re-attach"),
        ).toMatchObject({
          exitCode: 0,
          requested: true,
        });
        await removeAndCheckGone(stopped);
      },
      60 * SECOND,
    );

    it(
      "re-attached exit watching reports a crash that happens after the restart",
      async () => {
        const spec = await prepare("reattach-crash", "serve");
        const before = await createAndStart(spec);
        await runtime.destroy?.();
        runtime = await harness.create(context);
        await runtime.init?.();
        const exited = await nextExit(runtime, spec.instanceId);
        if (runtime.capabilities.supportsInput) {
          // Not a stop request: the server ends by itself, as a crash would.
          await runtime.sendInput(spec.instanceId, "stop");
          expect(await withTimeout(exited.exit, 10 * SECOND, "exit event")).toMatchObject({
            instanceId: spec.instanceId,
            exitCode: 0,
            requested: false,
          });
        } else {
          await runtime.kill(spec.instanceId);
          await withTimeout(exited.exit, 10 * SECOND, "exit event");
        }
        await removeAndCheckGone({ ...before, status: "exited" });
      },
      60 * SECOND,
    );

    it("refuses hostile specs with typed errors and creates nothing", async () => {
      const spec = await prepare("hostile", "serve");
      const outside = join(base, "outside");
      await mkdir(outside, { recursive: true });
      const hostile: [string, Record<string, unknown>][] = [
        ["LD_PRELOAD", { env: { LD_PRELOAD: "/tmp/evil.so" } }],
        ["NODE_OPTIONS", { env: { NODE_OPTIONS: "--require /tmp/evil.js" } }],
        ["PATH", { env: { PATH: "/tmp/evil" } }],
        ["DOCKER_HOST", { env: { DOCKER_HOST: "tcp://evil:2375" } }],
        ["shell string", { command: ["/bin/sh -c 'id; rm -rf /'"] }],
        ["sh -c", { command: ["sh", "-c", "id; rm -rf /"] }],
        ["env launcher", { command: ["env", "LD_PRELOAD=/tmp/evil.so", "sh", "server.sh"] }],
        ["mount of /", { workingDirectory: "/" }],
        ["docker socket", { workingDirectory: "/var/run/docker.sock" }],
        ["outside the instance root", { workingDirectory: outside }],
        ["privileged flag", { privileged: true }],
        ["host network", { hostConfig: { NetworkMode: "host", Privileged: true } }],
      ];
      if (harness.refusedImage) hostile.push(["image", { image: harness.refusedImage }]);
      for (const [what, change] of hostile) {
        const error = await runtime.create({ ...spec, ...change } as RuntimeInstanceSpec).then(
          () => null,
          (caught: unknown) => caught,
        );
        expect(OrchestratorError.isInstance(error), `${what}: ${String(error)}`).toBe(true);
        expect((error as OrchestratorError).code, what).toBe("FORBIDDEN");
      }
      await expectCode(
        runtime.create({ ...spec, command: "sh server.sh" as unknown as string[] }),
        "VALIDATION_FAILED",
      );
      await expectCode(
        runtime.create({ ...spec, workingDirectory: join(context.instancesRoot, "missing") }),
        "VALIDATION_FAILED",
      );
      expect(await runtime.inspect(spec.instanceId)).toBeNull();
      expect(await runtime.list({ instance: spec.instanceId })).toEqual([]);
    });

    it("answers unknown instances with NOT_FOUND and misuse with CONFLICT", async () => {
      const missing = `conf-${run}-missing`;
      await expectCode(runtime.start(missing), "NOT_FOUND");
      await expectCode(runtime.stop(missing), "NOT_FOUND");
      await expectCode(runtime.kill(missing), "NOT_FOUND");
      await expectCode(runtime.sendInput(missing, "x"), "NOT_FOUND");
      await expectCode(runtime.stats(missing), "NOT_FOUND");
      await expectCode(runtime.logs(missing), "NOT_FOUND");
      expect(await runtime.inspect(missing)).toBeNull();
      await runtime.remove(missing);

      const spec = await prepare("conflict", "serve");
      created.add(spec.instanceId);
      const info = await runtime.create(spec);
      await expectCode(runtime.create(spec), "CONFLICT");
      if (runtime.capabilities.supportsInput) {
        await expectCode(runtime.sendInput(spec.instanceId, "x"), "CONFLICT");
      }
      // Stopping or killing what does not run is a no-op (agents retry).
      expect(await runtime.stop(spec.instanceId)).toMatchObject({ status: "created" });
      expect(await runtime.kill(spec.instanceId)).toMatchObject({ status: "created" });
      expect(await collect(await runtime.logs(spec.instanceId))).toEqual([]);
      await removeAndCheckGone(info);
    });
  });
}
