import { OrchestratorError } from "@orchestrator/core";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { createSecretCipher, PLAINTEXT_CIPHER, SqlRepositories } from "../src/index.js";

const KEY = "0123456789abcdef0123456789abcdef-test";

describe("createSecretCipher", () => {
  it("round-trips, binds a value to its row and detects tampering", () => {
    const cipher = createSecretCipher(KEY);
    const sealed = cipher.seal('{"PASSWORD":"hunter2"}', "inst_1");
    expect(sealed).not.toContain("hunter2");
    expect(sealed).not.toBe(cipher.seal('{"PASSWORD":"hunter2"}', "inst_1")); // random IV
    expect(cipher.open(sealed, "inst_1")).toBe('{"PASSWORD":"hunter2"}');
    expect(() => cipher.open(sealed, "inst_2")).toThrow(OrchestratorError);
    const tampered = `${sealed.slice(0, -2)}${sealed.endsWith("A") ? "B" : "A"}A`;
    expect(() => cipher.open(tampered, "inst_1")).toThrow(/cannot decrypt/);
    expect(() =>
      createSecretCipher("0123456789abcdef0123456789abcde").open(sealed, "inst_1"),
    ).toThrow();
    // Values stored before a key was configured are still readable.
    expect(cipher.open('{"A":"b"}', "inst_1")).toBe('{"A":"b"}');
  });

  it("refuses short keys, and plaintext mode refuses encrypted values", () => {
    expect(() => createSecretCipher("short")).toThrow(/at least 32/);
    const sealed = createSecretCipher(KEY).seal("x", "c");
    expect(() => PLAINTEXT_CIPHER.open(sealed, "c")).toThrow(/no secret key/);
  });
});

describe("secret variables at rest", () => {
  async function storedSecretColumn(secretKey?: string): Promise<string | null> {
    const repositories = SqlRepositories.fromUrl("sqlite::memory:", secretKey ? { secretKey } : {});
    try {
      await repositories.init();
      await repositories.templates.addVersion(
        {
          name: "t",
          layers: [],
          variables: {},
          runtime: {},
          ports: [],
          resources: { memoryMb: 1, cpu: 0, diskMb: 0 },
          readiness: { timeoutSeconds: 1 },
          stop: { input: null, signal: "SIGTERM", timeoutSeconds: 1 },
          restart: { policy: "never", maxRestarts: 0, windowSeconds: 1 },
        },
        "d",
        new Date(0),
      );
      await repositories.instances.create(
        {
          id: "i1",
          name: "i1",
          templateName: "t",
          templateVersion: 1,
          desiredState: "running",
          state: "REQUESTED",
          nodeId: null,
          epoch: 0,
          ports: {},
          resources: { memoryMb: 1, cpu: 0, diskMb: 0 },
          variables: { PASSWORD: "hunter2", NAME: "x" },
          secretVariables: ["PASSWORD"],
          owner: null,
        },
        new Date(0),
      );
      const { rows } = await sql<{
        variables: string;
        secret_values: string | null;
      }>`select variables, secret_values from orch_instances`.execute(repositories.db);
      expect(rows[0]?.variables).not.toContain("hunter2");
      expect(
        (await repositories.instances.get("i1", { includeSecrets: true }))?.variables.PASSWORD,
      ).toBe("hunter2");
      return rows[0]?.secret_values ?? null;
    } finally {
      await repositories.destroy();
    }
  }

  it("are encrypted when a secret key is configured", async () => {
    const stored = await storedSecretColumn(KEY);
    expect(stored).not.toContain("hunter2");
    expect(stored).toMatch(/^aes256gcm\./);
  });

  it("are kept apart from the other variables otherwise", async () => {
    expect(await storedSecretColumn()).toBe('{"PASSWORD":"hunter2"}');
  });
});
