// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${NAME} placeholders in plain strings are the subject of these tests
import { mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OrchestratorError } from "../../src/errors/orchestrator-error.js";
import {
  ResolvedVariables,
  SUBSTITUTION_CHUNK_BYTES,
  substitute,
  VariableSubstituter,
} from "../../src/variables/index.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "orch-subst-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("VariableSubstituter", () => {
  const values = { NAME: "world", PORT: "8080" };

  it("substitutes strings and is strict by default", () => {
    expect(substitute("hello ${NAME}:${PORT}", values)).toBe("hello world:8080");
    expect(() => substitute("a\n ${NOPE}", values, { source: "motd.txt" })).toThrowError(
      expect.objectContaining({
        code: "TEMPLATE_INVALID",
        message: "unknown variables: motd.txt:2:2 ${NOPE}",
      }),
    );
  });

  it("leaves unknown variables untouched and reports them when not strict", () => {
    const substituter = new VariableSubstituter(values, { strict: false });
    const { text, report } = substituter.substituteString("${NOPE} ${NAME}", "x");
    expect(text).toBe("${NOPE} world");
    expect(report.unknown).toEqual([{ source: "x", line: 1, column: 1, name: "NOPE" }]);
    expect(report.used).toEqual(["NAME", "NOPE"]);
  });

  it("sees only the variables it was given, never the process environment", () => {
    process.env.ORCH_TEST_LEAK = "leaked";
    try {
      expect(substitute("${ORCH_TEST_LEAK:-safe}${HOME:-}", {}, { strict: false })).toBe(
        "${ORCH_TEST_LEAK:-safe}${HOME:-}",
      );
    } finally {
      delete process.env.ORCH_TEST_LEAK;
    }
  });

  it("substitutes a small file with the requested mode", async () => {
    await writeFile(join(dir, "in.cfg"), "name=${NAME}\n");
    const report = await new VariableSubstituter(values).substituteFile(
      join(dir, "in.cfg"),
      join(dir, "out.cfg"),
      { mode: 0o640 },
    );
    expect(await readFile(join(dir, "out.cfg"), "utf8")).toBe("name=world\n");
    expect((await stat(join(dir, "out.cfg"))).mode & 0o777).toBe(0o640);
    expect(report).toMatchObject({
      replacements: 1,
      bytesRead: 13,
      bytesWritten: 11,
      binary: false,
    });
  });

  it("streams a file bigger than its buffers, with placeholders across buffer boundaries", async () => {
    // Place placeholders so that some straddle every 1 MiB boundary.
    const unit = "abc ${NAME} ${PORT}\n";
    const chunks: string[] = [];
    let length = 0;
    while (length < SUBSTITUTION_CHUNK_BYTES * 3 + 100) {
      chunks.push(unit);
      length += unit.length;
    }
    const input = chunks.join("");
    await writeFile(join(dir, "big.txt"), input);
    const report = await new VariableSubstituter(values).substituteFile(
      join(dir, "big.txt"),
      join(dir, "big.out"),
    );
    const expected = input.replaceAll("${NAME}", "world").replaceAll("${PORT}", "8080");
    expect(await readFile(join(dir, "big.out"), "utf8")).toBe(expected);
    expect(report.replacements).toBe(chunks.length * 2);
  });

  it("reports positions of unknown variables in a streamed file and removes the output in strict mode", async () => {
    const filler = `${"x".repeat(99)}\n`.repeat(Math.ceil(SUBSTITUTION_CHUNK_BYTES / 100) + 5);
    await writeFile(join(dir, "in.txt"), `${filler}é\${MISSING}\n`);
    const error = await new VariableSubstituter(values)
      .substituteFile(join(dir, "in.txt"), join(dir, "out.txt"), { source: "conf/in.txt" })
      .catch((caught: unknown) => caught);
    const line = filler.split("\n").length;
    expect(OrchestratorError.hasCode(error, "TEMPLATE_INVALID")).toBe(true);
    expect((error as Error).message).toBe(`unknown variables: conf/in.txt:${line}:2 \${MISSING}`);
    await expect(stat(join(dir, "out.txt"))).rejects.toThrow(/ENOENT/);
  });

  it("has a synchronous variant for small files with the same results", async () => {
    await writeFile(join(dir, "in.cfg"), "name=${NAME}\n${NOPE}");
    const lenient = new VariableSubstituter(values, { strict: false });
    const report = lenient.substituteFileSync(join(dir, "in.cfg"), join(dir, "out.cfg"), {
      source: "in.cfg",
      mode: 0o600,
    });
    expect(await readFile(join(dir, "out.cfg"), "utf8")).toBe("name=world\n${NOPE}");
    expect((await stat(join(dir, "out.cfg"))).mode & 0o777).toBe(0o600);
    expect(report.unknown).toEqual([{ source: "in.cfg", line: 2, column: 1, name: "NOPE" }]);
    expect(() =>
      new VariableSubstituter(values).substituteFileSync(
        join(dir, "in.cfg"),
        join(dir, "strict.cfg"),
      ),
    ).toThrow(/unknown variables/);
    await expect(stat(join(dir, "strict.cfg"))).rejects.toThrow(/ENOENT/);
    // Exclusive creation: an existing file (or planted symlink) is never overwritten.
    expect(() => lenient.substituteFileSync(join(dir, "in.cfg"), join(dir, "out.cfg"))).toThrow(
      /EEXIST/,
    );
  });

  it("copies binary files untouched", async () => {
    const binary = Buffer.concat([Buffer.from("PK\u0003\u0004\u0000${NAME}"), Buffer.alloc(100)]);
    await writeFile(join(dir, "a.jar"), binary);
    const report = await new VariableSubstituter(values).substituteFile(
      join(dir, "a.jar"),
      join(dir, "b.jar"),
    );
    expect(report.binary).toBe(true);
    expect(await readFile(join(dir, "b.jar"))).toEqual(binary);
  });

  it("never writes through a symlink planted at the destination", async () => {
    await writeFile(join(dir, "in.txt"), "${NAME}");
    await writeFile(join(dir, "sentinel"), "keep");
    await symlink(join(dir, "sentinel"), join(dir, "out.txt"));
    await expect(
      new VariableSubstituter(values).substituteFile(join(dir, "in.txt"), join(dir, "out.txt")),
    ).rejects.toThrow(/EEXIST/);
    expect(await readFile(join(dir, "sentinel"), "utf8")).toBe("keep");
  });

  it("substitutes a stream in constant memory (48 MiB through, < 4 MiB retained)", async () => {
    const substituter = new VariableSubstituter(values);
    const block = Buffer.from(
      `${"lorem ipsum dolor sit amet ${NAME}\n".padStart(400, "x").repeat(160)}`,
    ); // ~64 KiB
    const total = 48 * 1024 * 1024;
    async function* source() {
      for (let sent = 0; sent < total; sent += block.length) yield block;
    }
    // Retained memory, not garbage awaiting collection: sample after a full GC.
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const retained = () => {
      // Twice: array buffer backing stores are released by the second pass.
      gc();
      gc();
      const usage = process.memoryUsage();
      return usage.arrayBuffers + usage.heapUsed;
    };
    let outBytes = 0;
    let peak = 0;
    const before = retained();
    let report: { replacements: number } | undefined;
    for await (const piece of substituter.substituteStream(source(), {
      source: "stream",
      onReport: (r) => {
        report = r;
      },
    })) {
      outBytes += piece.length;
      if ((outBytes & 0x7fffff) < piece.length) peak = Math.max(peak, retained() - before);
    }
    expect(outBytes).toBeGreaterThan(total * 0.9);
    expect(report?.replacements).toBeGreaterThan(100_000);
    expect(peak).toBeLessThan(4 * 1024 * 1024);
  });

  it("passes binary streams through and reports them", async () => {
    const reports: unknown[] = [];
    async function* source() {
      yield Buffer.from([0, 1, 2, 0x24, 0x7b]);
      yield Buffer.from("${NAME}");
    }
    const chunks: Buffer[] = [];
    for await (const chunk of new VariableSubstituter(values).substituteStream(source(), {
      onReport: (report) => reports.push(report),
    })) {
      chunks.push(chunk);
    }
    expect(Buffer.concat(chunks)).toEqual(
      Buffer.concat([Buffer.from([0, 1, 2, 0x24, 0x7b]), Buffer.from("${NAME}")]),
    );
    expect(reports).toEqual([expect.objectContaining({ binary: true, bytesRead: 12 })]);
  });

  it("keeps secrets out of reports and errors", () => {
    const variables = new ResolvedVariables({ TOKEN: "s3cr3t-value" }, ["TOKEN"]);
    const substituter = new VariableSubstituter(variables);
    const { report } = substituter.substituteString("t=${TOKEN}");
    expect(JSON.stringify(report)).not.toContain("s3cr3t");
    try {
      substituter.substituteString("t=${TOKEN} ${UNKNOWN}");
    } catch (error) {
      expect(JSON.stringify(error)).not.toContain("s3cr3t");
      expect(String(error)).not.toContain("s3cr3t");
    }
  });
});
