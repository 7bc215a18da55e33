import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OrchestratorError, type ValidationError } from "@orchestrator/core";
import { describe, expect, it } from "vitest";
import { BRAIN_ENV_VARS, loadBrainConfig } from "../src/config/brain-config.js";

describe("loadBrainConfig", () => {
  it("has working embedded defaults", () => {
    const config = loadBrainConfig({ env: {} });
    expect(config.port).toBe(8080);
    expect(config.offlineAfterMs).toBe(15_000);
    expect(config.databaseUrl).toMatch(/^sqlite:\/.*\.orchestrator\/brain\.db$/);
  });

  it("reads ORCH_* variables with their types", () => {
    const config = loadBrainConfig({
      env: {
        ORCH_PORT: "9000",
        ORCH_DATABASE_URL: "mysql://u:p@db:3306/orch",
        ORCH_SECURE_COOKIES: "true",
        ORCH_OFFLINE_AFTER_MS: "20000",
        ORCH_WEBHOOKS: JSON.stringify([
          { url: "https://hooks.example/x", secret: "0123456789abcdef", events: ["node.offline"] },
        ]),
      },
    });
    expect(config).toMatchObject({
      port: 9000,
      databaseUrl: "mysql://u:p@db:3306/orch",
      secureCookies: true,
      offlineAfterMs: 20_000,
    });
    expect(config.webhooks).toHaveLength(1);
  });

  it("lists every problem at once, naming the variable", () => {
    const error = (() => {
      try {
        loadBrainConfig({
          env: {
            ORCH_PORT: "eighty",
            ORCH_HEARTBEAT_INTERVAL_MS: "1.5",
            ORCH_SECURE_COOKIES: "maybe",
            ORCH_DATABASE_URL: "postgres://x",
            ORCH_WEBHOOKS: '[{"url":"ftp://x","secret":"short"}]',
          },
        });
      } catch (caught) {
        return caught;
      }
    })();
    expect(OrchestratorError.hasCode(error, "VALIDATION_FAILED")).toBe(true);
    const paths = (error as ValidationError).issues.map((issue) => issue.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "ORCH_PORT",
        "ORCH_HEARTBEAT_INTERVAL_MS",
        "ORCH_SECURE_COOKIES",
        "ORCH_DATABASE_URL",
        "webhooks[0].url",
        "webhooks[0].secret",
      ]),
    );
  });

  it("refuses an offline timeout shorter than two heartbeats", () => {
    expect(() =>
      loadBrainConfig({
        env: { ORCH_HEARTBEAT_INTERVAL_MS: "5000", ORCH_OFFLINE_AFTER_MS: "6000" },
      }),
    ).toThrow(/at least twice the heartbeat interval/);
  });

  it("reads a JSON file, with the environment winning, and refuses unknown keys", () => {
    const dir = mkdtempSync(join(tmpdir(), "orch-config-"));
    const file = join(dir, "brain.json");
    writeFileSync(file, JSON.stringify({ port: 7000, host: "0.0.0.0" }));
    expect(loadBrainConfig({ env: { ORCH_PORT: "7001" }, file })).toMatchObject({
      port: 7001,
      host: "0.0.0.0",
    });
    writeFileSync(file, JSON.stringify({ prot: 7000 }));
    expect(() => loadBrainConfig({ env: {}, file })).toThrow(/prot: unknown setting/);
  });

  it("documents every variable it reads", () => {
    expect(BRAIN_ENV_VARS).toContain("ORCH_DATABASE_URL");
    expect(new Set(BRAIN_ENV_VARS).size).toBe(BRAIN_ENV_VARS.length);
  });
});
