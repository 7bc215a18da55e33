/**
 * MariaDB unavailable under a running platform (real processes). The database
 * is our own `mariadbd` on another port and data folder, started and stopped
 * by this test — the shared test database is never touched. Runs where the
 * MariaDB server binaries are installed (CI); skips visibly elsewhere.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testServiceSkipReason } from "@orchestrator/core/testing";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, sleep, stopAllCliProcesses, waitFor } from "./support/cli-process.js";
import { type AgentHandle, OFFLINE_AFTER_MS, Platform } from "./support/platform.js";

const MARIADBD = "/usr/sbin/mariadbd";
const INSTALL_DB = "/usr/bin/mariadb-install-db";
const skip =
  testServiceSkipReason("mysql") ??
  (existsSync(MARIADBD) && existsSync(INSTALL_DB)
    ? null
    : `MariaDB server binaries (${MARIADBD}, ${INSTALL_DB}) not installed`);
if (skip) console.warn(`[resilience] database faults: ${skip}`);

/** A throwaway mariadbd: its own data folder, loopback port, no grant tables. */
class OwnMariaDb {
  private child: ChildProcess | null = null;
  output = "";
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  install(): void {
    execFileSync(
      INSTALL_DB,
      [
        "--no-defaults",
        `--datadir=${join(this.dir, "data")}`,
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        `--user=${process.getuid?.() === 0 ? "root" : (process.env.USER ?? "root")}`,
      ],
      { stdio: "ignore", timeout: 60_000 },
    );
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.child = spawn(
      MARIADBD,
      [
        "--no-defaults",
        `--datadir=${join(this.dir, "data")}`,
        `--port=${this.port}`,
        `--socket=${join(this.dir, "mysqld.sock")}`,
        "--bind-address=127.0.0.1",
        ...(process.getuid?.() === 0 ? ["--user=root"] : []),
        // Loopback only, test data only: any local client may connect.
        "--skip-grant-tables",
        "--skip-log-bin",
        "--innodb-buffer-pool-size=32M",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child.stderr!.on("data", (chunk) => {
      this.output = (this.output + chunk).slice(-20_000);
    });
    await waitFor(
      "mariadbd to accept connections",
      async () => {
        const connection = await mysql.createConnection({
          host: "127.0.0.1",
          port: this.port,
          user: "root",
        });
        await connection.end();
        return true;
      },
      { timeoutMs: 60_000, intervalMs: 200, context: () => this.output },
    );
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(30_000).then(() => child.kill("SIGKILL"))]);
    await exited;
  }
}

describe.skipIf(skip !== null)(
  "MariaDB unavailable (own mariadbd, real processes)",
  { timeout: 120_000 },
  () => {
    let platform: Platform;
    let agent: AgentHandle;
    let database: OwnMariaDb;
    let dir: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "orch-resilience-mariadb-"));
      database = new OwnMariaDb(dir, await freePort());
      database.install();
      await database.start();
      const admin = await mysql.createConnection({
        host: "127.0.0.1",
        port: database.port,
        user: "root",
      });
      await admin.query("CREATE DATABASE orch_r_outage");
      await admin.end();
      platform = await Platform.create("mysql");
      platform.useDatabase(`mysql://root@127.0.0.1:${database.port}/orch_r_outage`);
      await platform.startBrain();
      await platform.login();
      const pushed = await platform.pushTemplate({ name: "db-quick", runtime: "process" });
      expect(pushed.code, pushed.output).toBe(0);
      agent = await platform.addAgent("db-agent", "process", "42800-42899");
    }, 120_000);

    afterAll(async () => {
      try {
        await database?.start().catch(() => undefined); // so the platform can clean up through the API
        await platform?.dispose();
      } finally {
        await stopAllCliProcesses();
        await database?.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }, 120_000);

    it("answers 503 with Retry-After while the database is down (not 500), applies nothing half-way, recovers by itself, marks no node OFFLINE", async () => {
      const id = await platform.createInstance("db-quick", "db-1");
      await platform.waitForState(id, "RUNNING");
      const before = await platform.instances();

      await database.stop();
      try {
        for (const [method, path, body] of [
          ["GET", "/instances", undefined],
          ["POST", "/instances", { template: "db-quick", name: "during-outage" }],
          ["POST", `/instances/${id}/stop`, undefined],
        ] as const) {
          const response = await waitFor(
            `503 from ${method} ${path}`,
            async () => {
              const answer = await platform.api(method, path, body);
              return answer.status === 503 ? answer : null;
            },
            { timeoutMs: 30_000 },
          );
          expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
          expect((response.body as { error: { code: string } }).error.code).toBe("UNAVAILABLE");
        }
        const ready = await fetch(`${platform.url}/api/v1/readyz`);
        expect(ready.status).toBe(503);
        // Longer than the offline timeout: the agent keeps syncing against a Brain without its database.
        await sleep(OFFLINE_AFTER_MS * 1.5);
        expect(platform.brain!.exited).toBe(false);
        expect(agent.process!.exited).toBe(false);
      } finally {
        await database.start();
      }

      // The pool reconnects by itself.
      await waitFor(
        "the API to answer again",
        async () => (await platform.api("GET", "/instances")).status === 200,
        {
          timeoutMs: 30_000,
        },
      );
      // Nothing half-applied: the same instances, the one refused during the outage absent, the stop not applied.
      const after = await platform.instances();
      expect(after.map((i) => i.id).sort()).toEqual(before.map((i) => i.id).sort());
      expect(after.find((i) => i.name === "during-outage")).toBeUndefined();
      expect((await platform.instance(id)).state).toBe("RUNNING");
      // No node marked OFFLINE because of it.
      for (let i = 0; i < 10; i += 1) {
        expect((await platform.node(agent.nodeId)).status).toBe("ONLINE");
        await sleep(OFFLINE_AFTER_MS / 5);
      }
      const states = (await platform.events(id)).map((e) => e.to);
      expect(states).not.toContain("LOST");
      // And it works end to end again.
      expect((await platform.api("POST", `/instances/${id}/stop`)).status).toBe(202);
      await platform.waitForState(id, "STOPPED");
    });
  },
);
