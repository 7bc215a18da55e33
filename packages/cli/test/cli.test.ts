import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli.js";
import { EXIT } from "../src/exit-codes.js";

function io(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t), env },
    out,
    err,
  };
}

describe("orchestrator CLI", () => {
  it("prints help, and help for every command", async () => {
    for (const command of [
      "start",
      "brain",
      "agent",
      "template",
      "instance",
      "join-token",
      "migrate",
    ]) {
      const { io: streams, out } = io();
      expect(await runCli([command, "--help"], streams)).toBe(EXIT.ok);
      expect(out.join("\n")).toContain(`orchestrator ${command}`);
    }
    const { io: streams, out } = io();
    expect(await runCli(["--help"], streams)).toBe(EXIT.ok);
    expect(out.join("\n")).toContain("Exit codes");
  });

  it("answers bad usage with exit code 2", async () => {
    expect(await runCli(["frobnicate"], io().io)).toBe(EXIT.usage);
    expect(await runCli(["--nope"], io().io)).toBe(EXIT.usage);
    expect(await runCli(["instance"], io().io)).toBe(EXIT.usage);
    expect(await runCli(["instance", "create"], io({ ORCH_TOKEN: "orch_pat_x" }).io)).toBe(
      EXIT.usage,
    );
  });

  it("needs a token for remote commands (exit code 4) and reports errors as JSON with --json", async () => {
    const { io: streams, err } = io({});
    expect(await runCli(["instance", "list", "--json"], streams)).toBe(EXIT.denied);
    expect(JSON.parse(err[0]!)).toMatchObject({ error: { code: "UNAUTHORIZED" } });
  });

  it("says the Brain is unreachable with exit code 1", async () => {
    const { io: streams, err } = io({ ORCH_URL: "http://127.0.0.1:1", ORCH_TOKEN: "orch_pat_x" });
    expect(await runCli(["template", "list"], streams)).toBe(EXIT.failure);
    expect(err.join("\n")).toMatch(/cannot reach the Brain/);
  });

  it("migrates a database and reports its status", async () => {
    const env = { ORCH_DATABASE_URL: "sqlite::memory:" };
    const { io: streams, out } = io(env);
    expect(await runCli(["migrate", "--json"], streams)).toBe(EXIT.ok);
    expect(JSON.parse(out[0]!).applied.length).toBeGreaterThan(0);
  });
});
