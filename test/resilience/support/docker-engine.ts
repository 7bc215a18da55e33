/**
 * Docker engine faults for the resilience suite, without touching the shared
 * engine: `EngineSocketProxy` is a Unix socket forwarding to the real engine,
 * handed to one agent as its `DOCKER_HOST`.
 *
 * * `stop()` closes it and removes the socket file — to that agent exactly
 *   what a stopped `dockerd` looks like (it removes its socket too).
 * * `hang()` is a hung engine (what `SIGSTOP` on `dockerd` does): connections
 *   are still accepted, nothing is answered, open streams stall; `resume()`
 *   lets everything through again, requests made meanwhile included.
 *
 * Stopping or pausing the real `dockerd` instead was tried: it breaks the
 * Docker suites running at the same time (their calls fail or their
 * containers die), so it cannot be part of `npm test`.
 */
import { rm } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { testServiceEnv } from "@orchestrator/core/testing";

/** The engine's Unix socket path (from the test services' `ORCH_TEST_DOCKER`). */
export function engineSocketPath(): string | null {
  const url = testServiceEnv("docker")?.ORCH_TEST_DOCKER ?? "";
  return url.startsWith("unix://") ? url.slice("unix://".length) : null;
}

export class EngineSocketProxy {
  private server: Server | null = null;
  private readonly pairs = new Set<{ client: Socket; engine: Socket }>();
  /** Connections accepted while hung, forwarded on `resume()`. */
  private readonly held = new Set<Socket>();
  private hung = false;

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
      if (this.hung) {
        client.pause(); // the kernel accepted it; nobody reads it
        this.held.add(client);
        client.on("error", () => this.held.delete(client));
        return;
      }
      this.forward(client);
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
    this.hung = false;
    for (const { client, engine } of this.pairs) {
      client.destroy();
      engine.destroy();
    }
    this.pairs.clear();
    for (const client of this.held) client.destroy();
    this.held.clear();
    if (server) await new Promise((done) => server.close(done));
    await rm(this.path, { force: true });
  }

  /** The engine hangs: nothing flows on open connections, new ones are accepted and not read. */
  hang(): void {
    this.hung = true;
    for (const { client, engine } of this.pairs) {
      client.unpipe(engine);
      engine.unpipe(client);
      client.pause();
      engine.pause();
    }
  }

  /** The engine answers again: stalled streams flow, held requests are forwarded. */
  resume(): void {
    if (!this.hung) return;
    this.hung = false;
    for (const { client, engine } of this.pairs) {
      client.pipe(engine);
      engine.pipe(client);
    }
    for (const client of this.held) this.forward(client);
    this.held.clear();
  }

  private forward(client: Socket): void {
    const engine = createConnection(this.target);
    const pair = { client, engine };
    this.pairs.add(pair);
    const close = () => {
      client.destroy();
      engine.destroy();
      this.pairs.delete(pair);
    };
    client.on("error", close).on("close", close);
    engine.on("error", close).on("close", close);
    client.pipe(engine);
    engine.pipe(client);
  }
}
