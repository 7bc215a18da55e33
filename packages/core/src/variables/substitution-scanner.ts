/**
 * The byte-level state machine behind every substitution: `${NAME}`,
 * `${NAME:-default}` and the `$${` escape, scanned in one pass over Buffers.
 *
 * Why bytes: `Buffer.indexOf(0x24)` is memchr, so text without `$` streams at
 * memory speed, and output is made of zero-copy slices of the input plus the
 * pre-encoded values, written with one `writev`. A regex over decoded strings
 * is several times slower and decodes/encodes every byte twice.
 *
 * Values are emitted, never re-scanned: a value containing `${OTHER}` appears
 * literally. A placeholder split across chunks is carried over (at most the
 * placeholder's bounded length), so memory stays constant whatever the input
 * size. Positions of unknown variables are tracked as line:column (columns in
 * Unicode code points, 1-based) without keeping earlier chunks.
 */

const DOLLAR = 0x24;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const COLON = 0x3a;
const DASH = 0x2d;
const NEWLINE = 0x0a;
const RETURN = 0x0d;

/** Longest variable name, in bytes (names are ASCII). */
export const MAX_VARIABLE_NAME_BYTES = 64;
/** Default longest `${NAME:-default}` default text, in bytes. */
export const DEFAULT_MAX_DEFAULT_BYTES = 1024;
/** Unknown placeholders kept with their position per scanner (all are counted). */
export const MAX_RECORDED_UNKNOWN = 1000;

/** A placeholder whose name is neither declared nor built in. */
export interface UnknownPlaceholder {
  name: string;
  /** Byte offset of its `$` in the input. */
  offset: number;
  /** 1-based line. */
  line: number;
  /** 1-based column, in Unicode code points. */
  column: number;
}

export interface SubstitutionScannerOptions {
  /** Longest default text of `${NAME:-default}` (bytes); longer ones are left as literal text. */
  maxDefaultBytes?: number;
}

// Lookup table: 1 = may start a name ([A-Z_]), 2 = may continue one ([A-Z0-9_]).
const NAME_BYTE = new Uint8Array(256);
for (let c = 0x41; c <= 0x5a; c += 1) NAME_BYTE[c] = 3;
NAME_BYTE[0x5f] = 3;
for (let c = 0x30; c <= 0x39; c += 1) NAME_BYTE[c] = 2;

function codePoints(buffer: Uint8Array, from: number, to: number): number {
  let count = 0;
  for (let i = from; i < to; i += 1) if ((buffer[i]! & 0xc0) !== 0x80) count += 1;
  return count;
}

export class SubstitutionScanner {
  readonly #values: ReadonlyMap<string, Buffer>;
  readonly #maxDefault: number;
  #carry: Buffer | null = null;
  /** Absolute input offset of the first byte of the buffer being processed. */
  #base = 0;
  #line = 1;
  #column = 1;
  /** Absolute input offset up to which lines and columns are counted. */
  #counted = 0;
  #ended = false;

  /** Placeholders replaced (including those that took their default). */
  replacements = 0;
  /** Every unknown placeholder seen (the `unknown` list keeps the first 1000). */
  unknownCount = 0;
  readonly unknown: UnknownPlaceholder[] = [];
  /** Every name referenced by a well-formed placeholder, known or not. */
  readonly used = new Set<string>();
  bytesIn = 0;
  bytesOut = 0;

  /** `values` are pre-encoded UTF-8 Buffers, reused for every occurrence. */
  constructor(values: ReadonlyMap<string, Buffer>, options: SubstitutionScannerOptions = {}) {
    this.#values = values;
    this.#maxDefault = options.maxDefaultBytes ?? DEFAULT_MAX_DEFAULT_BYTES;
  }

  /**
   * Scans one chunk and appends the output pieces to `out`. Pieces may be
   * slices of `chunk`: write them before reusing `chunk`'s memory.
   */
  push(chunk: Uint8Array, out: Buffer[]): void {
    if (this.#ended) throw new Error("SubstitutionScanner: push after end");
    this.bytesIn += chunk.byteLength;
    const view = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const buffer = this.#carry ? Buffer.concat([this.#carry, view]) : view;
    this.#carry = null;
    this.#process(buffer, false, out);
  }

  /**
   * Scans a whole input at once (`push` + `end` in one call). Lines are only
   * counted up to an unknown variable, if any: nothing else needs them.
   */
  whole(input: Uint8Array, out: Buffer[]): void {
    if (this.#ended || this.bytesIn > 0)
      throw new Error("SubstitutionScanner: whole on a used scanner");
    this.#ended = true;
    this.bytesIn = input.byteLength;
    const view = Buffer.isBuffer(input)
      ? input
      : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    this.#process(view, true, out);
  }

  /** Flushes what a chunk boundary held back; an unterminated placeholder is literal text. */
  end(out: Buffer[]): void {
    if (this.#ended) return;
    this.#ended = true;
    const buffer = this.#carry ?? Buffer.alloc(0);
    this.#carry = null;
    this.#process(buffer, true, out);
  }

  #emit(out: Buffer[], buffer: Buffer, from: number, to: number): void {
    if (to > from) {
      out.push(buffer.subarray(from, to));
      this.bytesOut += to - from;
    }
  }

  #countTo(buffer: Buffer, to: number): void {
    const from = this.#counted - this.#base;
    if (to <= from) return;
    let lastNewline = -1;
    let p = buffer.indexOf(NEWLINE, from);
    while (p !== -1 && p < to) {
      this.#line += 1;
      lastNewline = p;
      p = buffer.indexOf(NEWLINE, p + 1);
    }
    if (lastNewline >= 0) this.#column = 1 + codePoints(buffer, lastNewline + 1, to);
    else this.#column += codePoints(buffer, from, to);
    this.#counted = this.#base + to;
  }

  #process(buffer: Buffer, final: boolean, out: Buffer[]): void {
    const length = buffer.length;
    const values = this.#values;
    let start = 0;
    let keepFrom = length;
    let i = buffer.indexOf(DOLLAR, 0);
    while (i !== -1) {
      if (i + 1 >= length) {
        if (!final) keepFrom = i;
        break;
      }
      const next = buffer[i + 1]!;
      if (next === DOLLAR) {
        if (i + 2 >= length) {
          if (!final) keepFrom = i;
          break;
        }
        if (buffer[i + 2] === OPEN) {
          // `$${` → `${`: drop the first `$`, keep the rest as literal text.
          this.#emit(out, buffer, start, i);
          start = i + 1;
          i = buffer.indexOf(DOLLAR, i + 3);
        } else {
          i = buffer.indexOf(DOLLAR, i + 1);
        }
        continue;
      }
      if (next !== OPEN) {
        i = buffer.indexOf(DOLLAR, i + 1);
        continue;
      }
      const nameStart = i + 2;
      const nameLimit = Math.min(length, nameStart + MAX_VARIABLE_NAME_BYTES + 1);
      let j = nameStart;
      if (j < nameLimit && (NAME_BYTE[buffer[j]!]! & 1) !== 0) {
        j += 1;
        while (j < nameLimit && NAME_BYTE[buffer[j]!]! !== 0) j += 1;
      }
      if (j >= length) {
        if (!final) {
          keepFrom = i;
          break;
        }
        i = buffer.indexOf(DOLLAR, i + 1);
        continue;
      }
      const nameLength = j - nameStart;
      if (nameLength === 0 || nameLength > MAX_VARIABLE_NAME_BYTES) {
        i = buffer.indexOf(DOLLAR, i + 1);
        continue;
      }
      let end: number;
      let defaultStart = -1;
      let defaultEnd = -1;
      const terminator = buffer[j];
      if (terminator === CLOSE) {
        end = j + 1;
      } else if (terminator === COLON) {
        if (j + 1 >= length) {
          if (!final) {
            keepFrom = i;
            break;
          }
          i = buffer.indexOf(DOLLAR, i + 1);
          continue;
        }
        if (buffer[j + 1] !== DASH) {
          i = buffer.indexOf(DOLLAR, i + 1);
          continue;
        }
        defaultStart = j + 2;
        const limit = Math.min(length, defaultStart + this.#maxDefault + 1);
        let k = defaultStart;
        while (k < limit) {
          const byte = buffer[k];
          if (byte === CLOSE || byte === NEWLINE || byte === RETURN) break;
          k += 1;
        }
        if (k >= limit) {
          if (!final && limit === length && k - defaultStart <= this.#maxDefault) {
            keepFrom = i;
            break;
          }
          i = buffer.indexOf(DOLLAR, i + 1);
          continue;
        }
        if (buffer[k] !== CLOSE) {
          i = buffer.indexOf(DOLLAR, i + 1);
          continue;
        }
        defaultEnd = k;
        end = k + 1;
      } else {
        i = buffer.indexOf(DOLLAR, i + 1);
        continue;
      }
      const name = buffer.toString("latin1", nameStart, j);
      this.used.add(name);
      const value = values.get(name);
      if (value === undefined) {
        this.unknownCount += 1;
        if (this.unknown.length < MAX_RECORDED_UNKNOWN) {
          this.#countTo(buffer, i);
          this.unknown.push({
            name,
            offset: this.#base + i,
            line: this.#line,
            column: this.#column,
          });
        }
        // Left untouched: the caller decides (strict fails, lenient reports).
        i = buffer.indexOf(DOLLAR, end);
        continue;
      }
      this.#emit(out, buffer, start, i);
      if (value.length === 0 && defaultStart >= 0) {
        this.#emit(out, buffer, defaultStart, defaultEnd);
      } else if (value.length > 0) {
        out.push(value);
        this.bytesOut += value.length;
      }
      this.replacements += 1;
      start = end;
      i = buffer.indexOf(DOLLAR, end);
    }
    this.#emit(out, buffer, start, keepFrom);
    // Later chunks may hold unknown variables whose line numbers need this
    // chunk's lines; after the final buffer nobody does.
    if (!final) this.#countTo(buffer, keepFrom);
    if (keepFrom < length) {
      // Copied: the caller may reuse `buffer`'s memory for the next chunk.
      this.#carry = Buffer.from(buffer.subarray(keepFrom));
    }
    this.#base += keepFrom;
  }
}
