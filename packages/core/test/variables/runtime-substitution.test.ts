// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${NAME} placeholders in plain strings are the subject of these tests
import { describe, expect, it } from "vitest";
import { ResolvedVariables, substituteArgv, substituteEnv } from "../../src/variables/index.js";

// Values that would do damage if anything ever went through a shell or re-scanned.
const hostile = new ResolvedVariables({
  NAME: "a b; rm -rf / && echo $(id) `id` 'q' \"dq\" | cat > /tmp/x",
  LINES: "one\ntwo",
  PLACEHOLDER: "${NAME} $${NAME} {{NAME}}",
  EMPTY: "",
});

describe("substituteArgv", () => {
  it("substitutes each argument on its own: a value never adds an argument", () => {
    const argv = substituteArgv(
      ["server", "--name=${NAME}", "${NAME}", "${LINES}", "${PLACEHOLDER}"],
      hostile,
    );
    expect(argv).toEqual([
      "server",
      `--name=${hostile.get("NAME")}`,
      hostile.get("NAME"),
      "one\ntwo",
      "${NAME} $${NAME} {{NAME}}",
    ]);
    expect(argv).toHaveLength(5);
  });

  it("keeps empty values as empty arguments and applies defaults", () => {
    expect(substituteArgv(["${EMPTY}", "${EMPTY:-fallback}"], hostile)).toEqual(["", "fallback"]);
  });

  it("lists every unknown variable with its argument index in strict mode", () => {
    expect(() => substituteArgv(["ok", "${A}", "x ${B}"], hostile)).toThrowError(
      expect.objectContaining({
        code: "TEMPLATE_INVALID",
        message: "unknown variables: command[1]:1:1 ${A}, command[2]:1:3 ${B}",
      }),
    );
  });

  it("leaves unknown variables when not strict and reports them", () => {
    let unknown = 0;
    expect(
      substituteArgv(["${A}"], hostile, {
        strict: false,
        onReport: (reports) => {
          unknown = reports.reduce((sum, report) => sum + report.unknownCount, 0);
        },
      }),
    ).toEqual(["${A}"]);
    expect(unknown).toBe(1);
  });

  it("refuses anything but an array of strings", () => {
    expect(() => substituteArgv("java -jar x" as never, hostile)).toThrow(/array of strings/);
  });
});

describe("substituteEnv", () => {
  it("substitutes values only", () => {
    expect(substituteEnv({ GREETING: "hi ${NAME}", RAW: "${PLACEHOLDER}" }, hostile)).toEqual({
      GREETING: `hi ${hostile.get("NAME")}`,
      RAW: "${NAME} $${NAME} {{NAME}}",
    });
  });

  it("refuses reserved and malformed keys", () => {
    expect(() =>
      substituteEnv(
        { PATH: "/x", LD_PRELOAD: "/x.so", node_options: "--require x", "A=B": "" },
        hostile,
      ),
    ).toThrowError(
      expect.objectContaining({
        code: "TEMPLATE_INVALID",
        details: {
          problems: [
            "env.PATH is a reserved name",
            "env.LD_PRELOAD is reserved (names starting with LD_)",
            "env.node_options is a reserved name",
            'env key "A=B" is not an identifier',
          ],
        },
      }),
    );
  });
});
