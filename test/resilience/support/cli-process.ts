/**
 * The `orchestrator` command run as a real operating-system process (from
 * source, as `npm start` does), so faults can be injected with real signals:
 * SIGKILL, SIGSTOP/SIGCONT, SIGTERM.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { resolve } from "node:path";

const BIN = resolve(import.meta.dirname, "../../../packages/cli/src/bin.ts");
const TSX = import.meta.resolve("tsx");

/** A free loopback TCP port (closed again before it is returned). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns something truthy. Errors thrown by the probe
 * count as "not yet" (a Brain being restarted refuses connections), except
 * those marked `stopWaiting`. The timeout is generous: CI machines are slow and shared.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; context?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      if ((error as { stopWaiting?: boolean }).stopWaiting === true) throw error;
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError ? ` (last error: ${(lastError as Error).message})` : "";
      throw new Error(
        `timed out waiting for ${what}${detail}${options.context ? `\n${options.context()}` : ""}`,
      );
    }
    await sleep(options.intervalMs ?? 100);
  }
}

/** Parent variables without any ORCH_* setting (only ORCH_TEST_* is kept out too). */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("ORCH_")) env[key] = value;
  }
  return env;
}

export class CliProcess {
  output = "";
  private readonly exitPromise: Promise<number | null>;

  private constructor(
    readonly label: string,
    readonly child: ChildProcess,
  ) {
    child.stdout!.on("data", (chunk) => this.append(chunk));
    child.stderr!.on("data", (chunk) => this.append(chunk));
    this.exitPromise = new Promise((r) =>
      child.once("exit", (code, signal) => r(code ?? (signal ? -1 : null))),
    );
  }

  private append(chunk: Buffer): void {
    this.output += chunk.toString();
    // Bounded: a chatty process must not grow the test's memory without end.
    if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
  }

  /** Spawns `orchestrator <args>` and waits for `readyText` in its output. */
  static async start(
    label: string,
    args: readonly string[],
    env: Record<string, string>,
    options: { cwd: string; readyText?: string; timeoutMs?: number },
  ): Promise<CliProcess> {
    const child = spawn(
      process.execPath,
      ["--import", TSX, "--conditions=@orchestrator/source", BIN, ...args],
      { cwd: options.cwd, env: { ...baseEnv(), ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    const cli = new CliProcess(label, child);
    LIVE.add(cli);
    if (options.readyText !== undefined) {
      const ready = options.readyText;
      await waitFor(
        `${label} to print '${ready}'`,
        () => {
          if (cli.exited) {
            throw Object.assign(
              new Error(`${label} exited with ${child.exitCode}:\n${cli.output}`),
              { stopWaiting: true },
            );
          }
          return cli.output.includes(ready);
        },
        { timeoutMs: options.timeoutMs ?? 60_000, context: () => cli.output },
      );
    }
    return cli;
  }

  /** Runs `orchestrator <args>` to completion. */
  static async run(
    args: readonly string[],
    env: Record<string, string>,
    cwd: string,
  ): Promise<{ code: number | null; output: string }> {
    const cli = await CliProcess.start(`orchestrator ${args.join(" ")}`, args, env, { cwd });
    const code = await Promise.race([
      cli.exitPromise,
      sleep(90_000).then(() => {
        cli.kill("SIGKILL");
        return null;
      }),
    ]);
    LIVE.delete(cli);
    return { code, output: cli.output };
  }

  get pid(): number {
    return this.child.pid!;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  get exitCode(): Promise<number | null> {
    return this.exitPromise;
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** SIGKILL and wait until the process is really gone. */
  async crash(): Promise<void> {
    this.kill("SIGKILL");
    await this.exitPromise;
    LIVE.delete(this);
  }

  /** SIGTERM (a clean stop), then SIGKILL if it does not exit in time. */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    if (this.exited) {
      LIVE.delete(this);
      return this.child.exitCode;
    }
    this.kill("SIGCONT"); // a paused process cannot handle SIGTERM
    this.kill("SIGTERM");
    const code = await Promise.race([
      this.exitPromise,
      sleep(timeoutMs).then(async () => {
        this.kill("SIGKILL");
        await this.exitPromise;
        return null;
      }),
    ]);
    LIVE.delete(this);
    return code;
  }
}

const LIVE = new Set<CliProcess>();

/** Every CLI process this test file started and did not stop yet: for afterAll. */
export async function stopAllCliProcesses(): Promise<void> {
  await Promise.all([...LIVE].map((cli) => cli.stop(5_000)));
}
