import { describe, expect, it } from "vitest";
import type { VariableDefinition } from "../../src/domain/template.js";
import { OrchestratorError, ValidationError } from "../../src/errors/orchestrator-error.js";
import {
  builtInVariables,
  checkVariables,
  REDACTED,
  ResolvedVariables,
  resolveVariables,
  validateVariableDefinitions,
  variableNameProblem,
} from "../../src/variables/index.js";

const builtIns = {
  instanceId: "i-1",
  instanceName: "survival",
  nodeId: "n-1",
  ports: [
    { name: "game", port: 25565 },
    { name: "rcon-tcp", port: 25575 },
  ],
  memoryMb: 2048,
  cpu: 1.5,
};

const definitions: Record<string, VariableDefinition> = {
  MOTD: { type: "string", default: "Welcome", maxLength: 10 },
  PLAYERS: { type: "integer", min: 1, max: 100, default: 20 },
  RATIO: { type: "number", min: 0, max: 1 },
  PVP: { type: "boolean", default: true },
  MODE: { type: "enum", values: ["survival", "creative"], required: true },
  SEED: { type: "string", pattern: "[0-9]+" },
  RULES: { type: "string", multiline: true },
  PASSWORD: { type: "string", secret: true, required: true, pattern: "[a-z]{4,}" },
};

describe("resolveVariables", () => {
  it("applies defaults, canonicalises values and adds built-ins", () => {
    const variables = resolveVariables(
      definitions,
      {
        MODE: "creative",
        PLAYERS: "007",
        RATIO: 0.5,
        PVP: "false",
        PASSWORD: "hunter",
        RULES: "a\nb",
      },
      { builtIns },
    );
    expect(Object.fromEntries(variables.entries())).toEqual({
      MOTD: "Welcome",
      PLAYERS: "7",
      RATIO: "0.5",
      PVP: "false",
      MODE: "creative",
      SEED: "",
      RULES: "a\nb",
      PASSWORD: "hunter",
      INSTANCE_ID: "i-1",
      INSTANCE_NAME: "survival",
      NODE_ID: "n-1",
      PORT: "25565",
      PORT_GAME: "25565",
      PORT_RCON_TCP: "25575",
      MEMORY_MB: "2048",
      CPU: "1.5",
    });
    expect(variables.isSecret("PASSWORD")).toBe(true);
    expect(variables.isSecret("MOTD")).toBe(false);
  });

  it("reports every problem at once, each with the variable and a form-ready message", () => {
    const result = checkVariables(definitions, {
      MOTD: "far too long for this",
      PLAYERS: 1.5,
      RATIO: "2",
      PVP: "yes",
      MODE: "hardcore",
      SEED: "abc",
      RULES: 3,
      PASSWORD: "AB\nCD",
      EXTRA: "x",
      PORT: "1",
    } as never);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues).toEqual([
      { path: "variables.EXTRA", message: "is not declared by the template" },
      { path: "variables.PORT", message: "is set by the platform and cannot be given" },
      { path: "variables.MOTD", message: "must be at most 10 characters long" },
      { path: "variables.PLAYERS", message: "must be a whole number" },
      { path: "variables.RATIO", message: "must be at most 1" },
      { path: "variables.PVP", message: "must be true or false" },
      { path: "variables.MODE", message: "must be one of: survival, creative" },
      { path: "variables.SEED", message: "must match the pattern [0-9]+" },
      { path: "variables.RULES", message: "must be text" },
      { path: "variables.PASSWORD", message: "must be a single line" },
    ]);
  });

  it("treats null, undefined and empty text as not given", () => {
    const result = checkVariables(definitions, { MODE: "", PASSWORD: null, MOTD: undefined });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.issues).toEqual([
        { path: "variables.MODE", message: "is required" },
        { path: "variables.PASSWORD", message: "is required" },
      ]);
    }
  });

  it("throws ValidationError (VALIDATION_FAILED) from resolveVariables", () => {
    const error = (() => {
      try {
        resolveVariables(definitions, {});
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(ValidationError);
    expect(OrchestratorError.hasCode(error, "VALIDATION_FAILED")).toBe(true);
  });

  it("never puts a value, secret or not, into a message", () => {
    const secret = "Sup3r$ecret\nvalue";
    const result = checkVariables(definitions, {
      MODE: "survival",
      PASSWORD: secret,
      MOTD: secret,
    });
    expect(result.ok).toBe(false);
    const serialised = JSON.stringify(result);
    expect(serialised).not.toContain("Sup3r");
    try {
      resolveVariables(definitions, { MODE: "survival", PASSWORD: secret });
    } catch (error) {
      expect(String(error)).not.toContain("Sup3r");
      expect(JSON.stringify(error)).not.toContain("Sup3r");
    }
  });

  it("refuses NUL even in multiline strings", () => {
    const result = checkVariables({ T: { type: "string", multiline: true } }, { T: "a\u0000b" });
    expect(result).toEqual({
      ok: false,
      issues: [{ path: "variables.T", message: "must not contain NUL characters" }],
    });
  });

  it("reports bad built-in contexts as issues", () => {
    const result = checkVariables(
      {},
      {},
      {
        builtIns: {
          ...builtIns,
          instanceId: "",
          ports: [
            { name: "a", port: 70000 },
            { name: "A", port: 1 },
          ],
        },
      },
    );
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.issues.map((issue) => issue.path)).toEqual([
        "builtIns.instanceId",
        "builtIns.ports[0].port",
        "builtIns.ports[1].name",
      ]);
    }
  });

  it("refuses invalid definitions as a template problem (TEMPLATE_INVALID)", () => {
    expect(() => checkVariables({ path: { type: "string" } }, {})).toThrowError(
      expect.objectContaining({ code: "TEMPLATE_INVALID" }),
    );
  });

  it("validates a frozen schema once, and a mutable one on every call", () => {
    const pattern: VariableDefinition = { type: "string", pattern: "[a-z]+" };
    const frozen = Object.freeze({ NAME: Object.freeze({ ...pattern }) });
    expect(checkVariables(frozen, { NAME: "abc" }).ok).toBe(true);
    expect(checkVariables(frozen, { NAME: "ABC" }).ok).toBe(false);
    // A mutable schema made invalid after a first check is refused the next time.
    const mutable: Record<string, VariableDefinition> = { NAME: { ...pattern } };
    expect(checkVariables(mutable, { NAME: "abc" }).ok).toBe(true);
    mutable.NAME = { type: "string", pattern: "([a-z" };
    expect(() => checkVariables(mutable, { NAME: "abc" })).toThrowError(
      expect.objectContaining({ code: "TEMPLATE_INVALID" }),
    );
  });
});

describe("validateVariableDefinitions", () => {
  it("accepts a valid schema", () => {
    expect(validateVariableDefinitions(definitions)).toEqual([]);
  });

  it("refuses bad names, reserved names and built-ins", () => {
    const issues = validateVariableDefinitions({
      lower: { type: "string" },
      PATH: { type: "string" },
      HOME: { type: "string" },
      LD_PRELOAD: { type: "string" },
      NODE_OPTIONS: { type: "string" },
      DOCKER_HOST: { type: "string" },
      ORCH_TOKEN: { type: "string" },
      PORT: { type: "integer" },
      PORT_EXTRA: { type: "integer" },
      INSTANCE_ID: { type: "string" },
    });
    expect(issues.map((issue) => issue.path)).toEqual([
      "variables.lower",
      "variables.PATH",
      "variables.HOME",
      "variables.LD_PRELOAD",
      "variables.NODE_OPTIONS",
      "variables.DOCKER_HOST",
      "variables.ORCH_TOKEN",
      "variables.PORT",
      "variables.PORT_EXTRA",
      "variables.INSTANCE_ID",
    ]);
  });

  it("checks fields, bounds, enums, patterns and defaults", () => {
    const issues = validateVariableDefinitions({
      A: { type: "text" as never },
      B: { type: "integer", min: 5, max: 1 },
      C: { type: "enum", values: [] },
      D: { type: "string", pattern: "(" },
      E: { type: "integer", default: 3.5 },
      F: { type: "string", maxLength: 2, default: "abc", secret: true },
      G: { type: "boolean", maxLength: 3, unknown: 1 } as never,
    });
    expect(issues).toEqual([
      {
        path: "variables.A.type",
        message: "must be one of string, integer, number, boolean, enum",
      },
      { path: "variables.B.min", message: "must not be greater than max" },
      { path: "variables.C.values", message: "must list at least one allowed value" },
      { path: "variables.D.pattern", message: "is not a valid regular expression" },
      { path: "variables.E.default", message: "is invalid: must be a whole number" },
      { path: "variables.F.default", message: "is invalid: must be at most 2 characters long" },
      { path: "variables.G.unknown", message: "is not a known field" },
      { path: "variables.G.maxLength", message: "applies only to string variables" },
    ]);
  });

  it("names the exact rule for names", () => {
    expect(variableNameProblem("OK_1")).toBeUndefined();
    expect(variableNameProblem("1BAD")).toMatch(/must match/);
    expect(variableNameProblem("A".repeat(65))).toMatch(/must match/);
    expect(variableNameProblem("LD_LIBRARY_PATH")).toMatch(/reserved/);
  });
});

describe("builtInVariables", () => {
  it("maps named ports to PORT_<NAME> and the first port to PORT", () => {
    expect([...builtInVariables(builtIns).keys()]).toEqual([
      "INSTANCE_ID",
      "INSTANCE_NAME",
      "NODE_ID",
      "PORT",
      "PORT_GAME",
      "PORT_RCON_TCP",
      "MEMORY_MB",
      "CPU",
    ]);
  });
});

describe("ResolvedVariables", () => {
  it("masks secrets in JSON, inspect and redact", async () => {
    const variables = new ResolvedVariables({ TOKEN: "abc123", NAME: "n" }, ["TOKEN"]);
    expect(JSON.stringify(variables)).toBe(`{"TOKEN":"${REDACTED}","NAME":"n"}`);
    const { inspect } = await import("node:util");
    expect(inspect(variables)).not.toContain("abc123");
    expect(variables.redact("token=abc123; again abc123")).toBe(
      `token=${REDACTED}; again ${REDACTED}`,
    );
    expect(variables.get("TOKEN")).toBe("abc123");
  });

  it("refuses invalid names and NUL in values", () => {
    expect(() => new ResolvedVariables({ bad: "x" })).toThrow(ValidationError);
    expect(() => new ResolvedVariables({ OK: "a\u0000" })).toThrow(/NUL/);
  });

  it("adds values with `with`, keeping secrets", () => {
    const base = new ResolvedVariables({ A: "1" }, ["A"]);
    const more = base.with({ B: "2" });
    expect(more.names()).toEqual(["A", "B"]);
    expect(more.isSecret("A")).toBe(true);
  });
});
