/**
 * Substitution over strings, buffers, streams and files, all driven by the
 * same byte scanner. Only the variables given to the constructor are visible:
 * never `process.env`, never agent or brain configuration.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
  writevSync,
} from "node:fs";
import { type FileHandle, open, rm } from "node:fs/promises";
import { TemplateInvalidError } from "../errors/orchestrator-error.js";
import { isBinaryContent } from "./binary-content.js";
import { ResolvedVariables } from "./resolved-variables.js";
import {
  DEFAULT_MAX_DEFAULT_BYTES,
  SubstitutionScanner,
  type UnknownPlaceholder,
} from "./substitution-scanner.js";
import { escapeValue, type ValueEscaping } from "./value-escaping.js";

export interface SubstitutionOptions {
  /**
   * Fail with `TEMPLATE_INVALID` listing `source:line:column` of every unknown
   * variable (default). When false, unknown placeholders are left untouched and reported.
   */
  strict?: boolean;
  /** Longest default text of `${NAME:-default}` in bytes (1024); longer ones stay literal. */
  maxDefaultBytes?: number;
}

/** An unknown variable and where it is. */
export interface UnknownVariable {
  /** The file (or `env.NAME`, `command[2]`, ...) it was found in. */
  source: string;
  line: number;
  column: number;
  name: string;
}

/** What one substitution did. Never contains a value. */
export interface SubstitutionReport {
  source: string;
  /** Binary input (NUL in the first 8000 bytes): passed through untouched. */
  binary: boolean;
  /** Placeholders replaced. */
  replacements: number;
  bytesRead: number;
  bytesWritten: number;
  /** Unknown variables with their position (the first 1000). */
  unknown: UnknownVariable[];
  /** Every unknown placeholder, including those beyond the recorded list. */
  unknownCount: number;
  /** Names referenced by placeholders (known or not), sorted. */
  used: string[];
}

export type SubstitutionVariables =
  | ResolvedVariables
  | ReadonlyMap<string, string>
  | Readonly<Record<string, string>>;

/** Options of `substituteFile` / `substituteFileSync`. */
export interface FileSubstitutionOptions {
  /** Name used in reports and errors (default: the source path). */
  source?: string;
  /** Mode of the new file (exact, whatever the umask); 0o644 when absent. */
  mode?: number;
  /** Copy binary files (NUL in the first 8000 bytes) untouched (default true). */
  detectBinary?: boolean;
  /** How values are escaped for the file's format (see `escapingForPath`); raw by default. */
  escaping?: ValueEscaping;
}

/** Bigger files are streamed through two buffers of this size; smaller ones are read whole. */
export const SUBSTITUTION_CHUNK_BYTES = 1024 * 1024;

/** The `TEMPLATE_INVALID` error of strict mode: every unknown variable with its position. */
export function unknownVariablesError(
  reports: readonly SubstitutionReport[],
): TemplateInvalidError {
  const unknown = reports.flatMap((report) => report.unknown);
  const total = reports.reduce((sum, report) => sum + report.unknownCount, 0);
  const shown = unknown.slice(0, 20).map((u) => `${u.source}:${u.line}:${u.column} \${${u.name}}`);
  const more = total > shown.length ? ` and ${total - shown.length} more` : "";
  return new TemplateInvalidError(`unknown variables: ${shown.join(", ")}${more}`, {
    details: { unknown: unknown.slice(0, 1000), unknownCount: total },
  });
}

function toResolved(variables: SubstitutionVariables): ResolvedVariables {
  if (variables instanceof ResolvedVariables) return variables;
  return new ResolvedVariables(variables instanceof Map ? variables : Object.entries(variables));
}

async function writeAll(handle: FileHandle, pieces: Buffer[]): Promise<void> {
  if (pieces.length === 0) return;
  let total = 0;
  for (const piece of pieces) total += piece.length;
  const { bytesWritten } = await handle.writev(pieces);
  if (bytesWritten === total) return;
  // A short write (rare on regular files): write what is left in order.
  let rest = Buffer.concat(pieces).subarray(bytesWritten);
  while (rest.length > 0) {
    const result = await handle.write(rest);
    rest = rest.subarray(result.bytesWritten);
  }
}

export class VariableSubstituter {
  readonly strict: boolean;
  readonly variables: ResolvedVariables;
  /** Values encoded once per escaping, reused for every occurrence. */
  readonly #encoded = new Map<ValueEscaping, ReadonlyMap<string, Buffer>>();
  readonly #maxDefaultBytes: number;

  constructor(variables: SubstitutionVariables, options: SubstitutionOptions = {}) {
    this.variables = toResolved(variables);
    this.strict = options.strict ?? true;
    this.#maxDefaultBytes = options.maxDefaultBytes ?? DEFAULT_MAX_DEFAULT_BYTES;
  }

  #values(escaping: ValueEscaping): ReadonlyMap<string, Buffer> {
    let encoded = this.#encoded.get(escaping);
    if (!encoded) {
      const values = new Map<string, Buffer>();
      for (const [name, value] of this.variables.entries()) {
        values.set(name, Buffer.from(escapeValue(value, escaping)));
      }
      encoded = values;
      this.#encoded.set(escaping, encoded);
    }
    return encoded;
  }

  /**
   * A fresh scanner over these variables (for callers driving their own I/O),
   * with values escaped for `escaping` (default: raw).
   */
  createScanner(escaping: ValueEscaping = "none"): SubstitutionScanner {
    return new SubstitutionScanner(this.#values(escaping), {
      maxDefaultBytes: this.#maxDefaultBytes,
    });
  }

  #report(source: string, scanner: SubstitutionScanner, binary = false): SubstitutionReport {
    return {
      source,
      binary,
      replacements: scanner.replacements,
      bytesRead: scanner.bytesIn,
      bytesWritten: scanner.bytesOut,
      unknown: scanner.unknown.map((u: UnknownPlaceholder) => ({
        source,
        line: u.line,
        column: u.column,
        name: u.name,
      })),
      unknownCount: scanner.unknownCount,
      used: [...scanner.used].sort(),
    };
  }

  #check(report: SubstitutionReport): void {
    if (this.strict && report.unknownCount > 0) throw unknownVariablesError([report]);
  }

  /** Substitutes in a whole buffer (no binary detection: the caller asked for it). */
  substituteBuffer(
    input: Uint8Array,
    source = "<buffer>",
    escaping: ValueEscaping = "none",
  ): { output: Buffer; report: SubstitutionReport } {
    const scanner = this.createScanner(escaping);
    const pieces: Buffer[] = [];
    scanner.whole(input, pieces);
    const report = this.#report(source, scanner);
    this.#check(report);
    return { output: Buffer.concat(pieces, scanner.bytesOut), report };
  }

  /** Substitutes in a string (UTF-8 semantics; columns in code points). */
  substituteString(
    input: string,
    source = "<string>",
    escaping: ValueEscaping = "none",
  ): { text: string; report: SubstitutionReport } {
    const { output, report } = this.substituteBuffer(Buffer.from(input), source, escaping);
    return { text: output.toString(), report };
  }

  /**
   * Substitutes over a stream of chunks in constant memory. Binary input (by
   * its first chunk) passes through untouched. `onReport` receives the report
   * at the end; in strict mode unknown variables make the stream throw at the end.
   */
  async *substituteStream(
    input: AsyncIterable<Uint8Array>,
    options: {
      source?: string;
      detectBinary?: boolean;
      escaping?: ValueEscaping;
      onReport?: (report: SubstitutionReport) => void;
    } = {},
  ): AsyncGenerator<Buffer> {
    const source = options.source ?? "<stream>";
    const scanner = this.createScanner(options.escaping);
    let first = true;
    let binary = false;
    let passed = 0;
    for await (const chunk of input) {
      if (first) {
        first = false;
        binary = (options.detectBinary ?? true) && isBinaryContent(chunk);
      }
      if (binary) {
        passed += chunk.byteLength;
        yield Buffer.from(chunk);
        continue;
      }
      const pieces: Buffer[] = [];
      scanner.push(chunk, pieces);
      // Copied out: the producer may reuse the chunk's memory once we yield.
      if (pieces.length > 0) yield Buffer.concat(pieces);
    }
    if (binary) {
      const report = this.#report(source, scanner, true);
      report.bytesRead = passed;
      report.bytesWritten = passed;
      options.onReport?.(report);
      return;
    }
    const pieces: Buffer[] = [];
    scanner.end(pieces);
    if (pieces.length > 0) yield Buffer.concat(pieces);
    const report = this.#report(source, scanner);
    options.onReport?.(report);
    this.#check(report);
  }

  /**
   * Substitutes `from` into a new file `to` (never overwriting: `O_EXCL`,
   * which also refuses to follow a symlink planted at `to`). Small files are
   * read whole; bigger ones stream through two 1 MiB buffers, reading the next
   * chunk while the previous one is written. Binary files are copied untouched.
   * In strict mode unknown variables remove `to` and throw.
   */
  async substituteFile(
    from: string,
    to: string,
    options: FileSubstitutionOptions = {},
  ): Promise<SubstitutionReport> {
    const source = options.source ?? from;
    const detectBinary = options.detectBinary ?? true;
    const input = await open(from, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      // A failure here (EEXIST included) leaves whatever is at `to` alone: it is not ours.
      const output = await open(
        to,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        options.mode ?? 0o644,
      );
      let report: SubstitutionReport;
      try {
        // The umask must not change the mode a template asked for.
        if (options.mode !== undefined) await output.chmod(options.mode);
        report = await this.#copySubstituted(input, output, source, detectBinary, options.escaping);
      } catch (error) {
        await output.close().catch(() => undefined);
        await rm(to, { force: true }).catch(() => undefined);
        throw error;
      }
      await output.close();
      if (this.strict && report.unknownCount > 0) {
        await rm(to, { force: true });
        throw unknownVariablesError([report]);
      }
      return report;
    } finally {
      await input.close();
    }
  }

  /**
   * `substituteFile` with synchronous I/O, for small files (it reads `from`
   * whole): one read and one write instead of seven thread-pool round trips,
   * several times cheaper when a merge substitutes thousands of config files.
   */
  substituteFileSync(
    from: string,
    to: string,
    options: FileSubstitutionOptions = {},
  ): SubstitutionReport {
    const source = options.source ?? from;
    const data = readFileSync(from, { flag: constants.O_RDONLY | constants.O_NOFOLLOW });
    const scanner = this.createScanner(options.escaping);
    let pieces: Buffer[];
    let report: SubstitutionReport;
    if ((options.detectBinary ?? true) && isBinaryContent(data)) {
      pieces = [data];
      report = {
        ...this.#report(source, scanner, true),
        bytesRead: data.length,
        bytesWritten: data.length,
      };
    } else {
      pieces = [];
      scanner.whole(data, pieces);
      report = this.#report(source, scanner);
      if (this.strict && report.unknownCount > 0) throw unknownVariablesError([report]);
    }
    const fd = openSync(
      to,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      options.mode ?? 0o644,
    );
    try {
      const total = report.bytesWritten;
      const written = pieces.length === 0 ? 0 : writevSync(fd, pieces);
      // A short write (rare on regular files): write what is left in order.
      let rest = written < total ? Buffer.concat(pieces).subarray(written) : Buffer.alloc(0);
      while (rest.length > 0) rest = rest.subarray(writeSync(fd, rest));
      if (options.mode !== undefined) fchmodSync(fd, options.mode);
    } catch (error) {
      closeSync(fd);
      rmSync(to, { force: true });
      throw error;
    }
    closeSync(fd);
    return report;
  }

  async #copySubstituted(
    input: FileHandle,
    output: FileHandle,
    source: string,
    detectBinary: boolean,
    escaping: ValueEscaping = "none",
  ): Promise<SubstitutionReport> {
    const scanner = this.createScanner(escaping);
    const size = (await input.stat()).size;
    if (size <= SUBSTITUTION_CHUNK_BYTES) {
      const data = await input.readFile();
      if (detectBinary && isBinaryContent(data)) {
        await writeAll(output, [data]);
        return {
          ...this.#report(source, scanner, true),
          bytesRead: data.length,
          bytesWritten: data.length,
        };
      }
      const pieces: Buffer[] = [];
      scanner.whole(data, pieces);
      await writeAll(output, pieces);
      return this.#report(source, scanner);
    }
    // Two buffers: read chunk n+1 into one while chunk n (slices of the other) is written.
    const buffers = [
      Buffer.allocUnsafe(SUBSTITUTION_CHUNK_BYTES),
      Buffer.allocUnsafe(SUBSTITUTION_CHUNK_BYTES),
    ] as const;
    let which = 0;
    let pending: Promise<void> = Promise.resolve();
    let first = true;
    let binary = false;
    let passed = 0;
    try {
      for (;;) {
        const buffer = buffers[which]!;
        const { bytesRead } = await input.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        const chunk = buffer.subarray(0, bytesRead);
        if (first) {
          first = false;
          binary = detectBinary && isBinaryContent(chunk);
        }
        const pieces: Buffer[] = [];
        if (binary) {
          pieces.push(chunk);
          passed += bytesRead;
        } else scanner.push(chunk, pieces);
        await pending;
        pending = writeAll(output, pieces);
        // Handled here so a failed write is not an unhandled rejection while
        // the next read runs; it is still thrown by the next `await pending`.
        pending.catch(() => undefined);
        which ^= 1;
      }
      if (!binary) {
        const pieces: Buffer[] = [];
        scanner.end(pieces);
        await pending;
        pending = writeAll(output, pieces);
      }
    } finally {
      // Never leave a write running against a handle about to be closed.
      await pending.catch(() => undefined);
    }
    await pending;
    if (binary)
      return { ...this.#report(source, scanner, true), bytesRead: passed, bytesWritten: passed };
    return this.#report(source, scanner);
  }
}

/** One-shot substitution in a string. Strict by default. */
export function substitute(
  text: string,
  variables: SubstitutionVariables,
  options: SubstitutionOptions & { source?: string } = {},
): string {
  return new VariableSubstituter(variables, options).substituteString(text, options.source).text;
}
