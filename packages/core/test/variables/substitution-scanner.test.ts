// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${NAME} placeholders in plain strings are the subject of these tests
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SubstitutionScanner } from "../../src/variables/substitution-scanner.js";

const encode = (values: Record<string, string>) =>
  new Map(Object.entries(values).map(([name, value]) => [name, Buffer.from(value)]));

/** Runs the scanner over `input` cut at `cuts` (byte offsets) and returns output + scanner. */
function run(input: string | Buffer, values: Record<string, string>, cuts: number[] = []) {
  const bytes = typeof input === "string" ? Buffer.from(input) : input;
  const scanner = new SubstitutionScanner(encode(values));
  const out: Buffer[] = [];
  let previous = 0;
  for (const cut of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (cut <= previous || cut >= bytes.length) continue;
    // Fresh copies, overwritten after use: the scanner must not keep references it needs later.
    const chunk = Buffer.from(bytes.subarray(previous, cut));
    scanner.push(chunk, out);
    const copied = Buffer.concat(out);
    out.length = 0;
    out.push(copied);
    chunk.fill(0x21);
    previous = cut;
  }
  scanner.push(Buffer.from(bytes.subarray(previous)), out);
  scanner.end(out);
  return { text: Buffer.concat(out).toString(), scanner };
}

/**
 * Reference semantics, written independently with a regex over a string: what
 * the byte scanner must agree with on every input.
 */
function reference(input: string, values: Record<string, string>): string {
  return input.replace(
    /\$\$\{|\$\{([A-Z_][A-Z0-9_]{0,63})(?::-([^}\r\n]{0,1024}))?\}/g,
    (match, name: string | undefined, fallback: string | undefined) => {
      if (match === "$${") return "${";
      if (name === undefined || !Object.hasOwn(values, name)) return match;
      const value = values[name]!;
      return value === "" && fallback !== undefined ? fallback : value;
    },
  );
}

describe("SubstitutionScanner", () => {
  it("replaces declared variables and leaves other text byte for byte", () => {
    const { text, scanner } = run("port=${PORT}\nmotd=${MOTD} ✓\n", {
      PORT: "25565",
      MOTD: "héllo",
    });
    expect(text).toBe("port=25565\nmotd=héllo ✓\n");
    expect(scanner.replacements).toBe(2);
    expect([...scanner.used].sort()).toEqual(["MOTD", "PORT"]);
  });

  it("applies ${NAME:-default} only when the value is empty", () => {
    const values = { EMPTY: "", SET: "x" };
    expect(run("${EMPTY:-fallback}|${SET:-fallback}|${EMPTY:-}", values).text).toBe("fallback|x|");
  });

  it("turns $${ into a literal ${ and leaves other dollars alone", () => {
    const values = { A: "1" };
    expect(run("$${A} $$ $A ${a} ${1X} ${A", values).text).toBe("${A} $$ $A ${a} ${1X} ${A");
    expect(run("$$${A}", values).text).toBe("$${A}");
  });

  it("never re-scans a value: placeholders inside values stay literal", () => {
    const { text } = run("${A}${B}", { A: "${B}", B: "$${A}{{x}}" });
    expect(text).toBe("${B}$${A}{{x}}");
  });

  it("reports unknown variables with 1-based line and code-point column, leaving them untouched", () => {
    const { text, scanner } = run("ok ${A}\n  é ${NOPE} x\n${ALSO:-d}", { A: "a" });
    expect(text).toBe("ok a\n  é ${NOPE} x\n${ALSO:-d}");
    expect(scanner.unknown).toEqual([
      { name: "NOPE", offset: 13, line: 2, column: 5 },
      { name: "ALSO", offset: 23, line: 3, column: 1 },
    ]);
    expect(scanner.unknownCount).toBe(2);
  });

  it("keeps positions right when placeholders and lines straddle chunk boundaries", () => {
    const input = "line1\nab${NOPE}cd\r\nxyz ${X} ${NOPE2:-q}\n";
    const whole = run(input, { X: "v" });
    for (let cut = 1; cut < input.length; cut += 1) {
      const split = run(input, { X: "v" }, [cut]);
      expect(split.text).toBe(whole.text);
      expect(split.scanner.unknown).toEqual(whole.scanner.unknown);
    }
  });

  it("treats over-long names and defaults as literal text", () => {
    const long = "A".repeat(65);
    expect(run(`\${${long}}`, { [long.slice(0, 64)]: "x" }).text).toBe(`\${${long}}`);
    const tooLongDefault = `\${E:-${"d".repeat(1025)}}`;
    expect(run(tooLongDefault, { E: "" }).text).toBe(tooLongDefault);
    expect(run(`\${E:-${"d".repeat(1024)}}`, { E: "" }).text).toBe("d".repeat(1024));
  });

  it("does not let a default span lines", () => {
    expect(run("${E:-a\nb}", { E: "" }).text).toBe("${E:-a\nb}");
  });

  it("counts bytes in and out", () => {
    const { scanner } = run("${A}-${A}", { A: "four" });
    expect(scanner.bytesIn).toBe(9);
    expect(scanner.bytesOut).toBe(9);
  });

  it("refuses push after end", () => {
    const scanner = new SubstitutionScanner(new Map());
    scanner.end([]);
    expect(() => scanner.push(Buffer.from("x"), [])).toThrow(/after end/);
  });

  // An alphabet dense in syntax so random strings hit every branch.
  const piece = fc.constantFrom(
    "$",
    "{",
    "}",
    ":",
    "-",
    "A",
    "B",
    "_",
    "1",
    "x",
    "\n",
    "é",
    "$$",
    "${",
    "${A}",
    "${B:-d}",
    "$${",
    " ",
  );
  const text = fc.array(piece, { maxLength: 60 }).map((pieces) => pieces.join(""));
  const values = fc.record({
    A: fc.constantFrom("", "v", "${B}", "$"),
    B: fc.constantFrom("", "w", "}"),
  });

  it("agrees with the reference semantics on any input (property)", () => {
    fc.assert(
      fc.property(text, values, (input, vars) => {
        expect(run(input, vars).text).toBe(reference(input, vars));
      }),
      { numRuns: 2000 },
    );
  });

  it("gives the same output and reports however the input is chunked (property)", () => {
    fc.assert(
      fc.property(
        text,
        values,
        fc.array(fc.nat({ max: 200 }), { maxLength: 8 }),
        (input, vars, cuts) => {
          const whole = run(input, vars);
          const split = run(input, vars, cuts);
          expect(split.text).toBe(whole.text);
          expect(split.scanner.unknown).toEqual(whole.scanner.unknown);
          expect(split.scanner.replacements).toBe(whole.scanner.replacements);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("scans a whole buffer like any chunking, counting lines only for unknowns (property)", () => {
    fc.assert(
      fc.property(
        text,
        values,
        fc.array(fc.nat({ max: 200 }), { maxLength: 8 }),
        (input, vars, cuts) => {
          const split = run(input, vars, cuts);
          const scanner = new SubstitutionScanner(encode(vars));
          const out: Buffer[] = [];
          scanner.whole(Buffer.from(input), out);
          expect(Buffer.concat(out).toString()).toBe(split.text);
          expect(scanner.unknown).toEqual(split.scanner.unknown);
          expect(scanner.bytesOut).toBe(Buffer.byteLength(split.text));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("round-trips: escaping every ${ makes any text come out unchanged (property)", () => {
    fc.assert(
      fc.property(text, fc.array(fc.nat({ max: 100 }), { maxLength: 4 }), (input, cuts) => {
        // A replacer function: in a replacement string "$$" would mean one "$".
        const escaped = input.replaceAll("${", () => "$${");
        expect(run(escaped, { A: "x", B: "y" }, cuts).text).toBe(input);
      }),
      { numRuns: 1000 },
    );
  });
});
