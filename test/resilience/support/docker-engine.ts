/**
 * Docker engine faults for the resilience suite.
 *
 * * `EngineSocketProxy`: a Unix socket forwarding to the real engine, handed to
 *   one agent as its `DOCKER_HOST`. `stop()` closes it and removes the socket
 *   file — to that agent exactly what a stopped `dockerd` looks like (it
 *   removes its socket too) — without stopping the shared engine, which would
 *   take down the containers of every other suite running at the same time.
 * * `dockerdProcess()`: the real `dockerd` that `scripts/services.sh` started
 *   (its pid file), to pause it with `SIGSTOP` — a hung engine: connections are
 *   accepted by the kernel, nothing answers — and resume it with `SIGCONT`.
 *   Every pause is undone by `resumeDockerd()`, which the suite calls in
 *   `finally` and `afterAll`.
 */
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { resolve } from "node:path";
import { testServiceEnv } from "@orchestrator/core/testing";

/** The engine's Unix socket path (from the test services' `ORCH_TEST_DOCKER`). */
export function engineSocketPath(): string | null {
  const url = testServiceEnv("docker")?.ORCH_TEST_DOCKER ?? "";
  return url.startsWith("unix://") ? url.slice("unix://".length) : null;
}

export class EngineSocketProxy {
  private server: Server | null = null;
  private readonly open = new Set<Socket>();

  constructor(
    readonly path: string,
    private readonly target: string,
  ) {}

  get dockerHost(): string {
    return `unix://${this.path}`;
  }

  async start(): Promise<void> {
    if (this.server) return;
    await rm(this.path, { force: true });
    const server = createServer((client) => {
      const engine = createConnection(this.target);
      this.open.add(client);
      this.open.add(engine);
      const close = () => {
        client.destroy();
        engine.destroy();
        this.open.delete(client);
        this.open.delete(engine);
      };
      client.on("error", close).on("close", close);
      engine.on("error", close).on("close", close);
      client.pipe(engine);
      engine.pipe(client);
    });
    await new Promise<void>((done, fail) => {
      server.once("error", fail);
      server.listen(this.path, () => done());
    });
    this.server = server;
  }

  /** The engine "stops": open connections (event stream, log follows) drop, the socket is gone. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.open) socket.destroy();
    this.open.clear();
    if (server) await new Promise((done) => server.close(done));
    await rm(this.path, { force: true });
  }
}

const PAUSED = new Set<number>();

/** The pid of the `dockerd` started by `scripts/services.sh`, or null when there is none. */
export function dockerdProcess(): number | null {
  const pidFile = resolve(import.meta.dirname, "../../../.services/dockerd.pid");
  try {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 1) return null;
    const name = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    if (name !== "dockerd") return null;
    process.kill(pid, 0); // signal permission (the suite runs as the user that started it)
    return pid;
  } catch {
    return null;
  }
}

export function pauseDockerd(pid: number): void {
  if (PAUSED.size === 0) process.once("exit", resumeDockerd); // even if the worker dies
  PAUSED.add(pid);
  process.kill(pid, "SIGSTOP");
}

/** Resumes every `dockerd` this file paused (idempotent; never throws). */
export function resumeDockerd(): void {
  for (const pid of PAUSED) {
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // gone: nothing to resume
    }
  }
  PAUSED.clear();
}
