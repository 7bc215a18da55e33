/**
 * Console output → styled text segments. Only SGR colour/weight codes are
 * interpreted; every other escape sequence (cursor moves, OSC titles and
 * hyperlinks, ...) and control character is dropped, so a server cannot
 * rewrite the page or smuggle links. Segments are rendered as text, never HTML.
 */

export interface AnsiStyle {
  fg: number | null;
  bg: number | null;
  bold: boolean;
  italic: boolean;
  underline: boolean;
}

export interface AnsiSegment {
  text: string;
  style: AnsiStyle;
}

const PLAIN: AnsiStyle = { fg: null, bg: null, bold: false, italic: false, underline: false };

// CSI (ESC [ params intermediates final), OSC (ESC ] ... BEL or ESC \), other
// two-character escapes, and C0/C1 controls except tab.
// Built from pieces (the escapes are spelled as regex escapes, not raw characters).
const ESC = "\\u001b";
const ESCAPES = new RegExp(
  [
    `${ESC}\\[([0-?]*)[ -/]*([@-~])`,
    `${ESC}\\][^\\u0007${ESC}]*(?:\\u0007|${ESC}\\\\)?`,
    `${ESC}[@-~]?`,
    "\\u009b[0-?]*[ -/]*[@-~]",
    "[\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]",
  ].join("|"),
  "g",
);

/** Applies one SGR parameter list (`1;31`) to a style. */
function applySgr(style: AnsiStyle, params: string): AnsiStyle {
  const next = { ...style };
  const codes = params === "" ? [0] : params.split(";").map((p) => Number(p || 0));
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i]!;
    if (code === 0) Object.assign(next, PLAIN);
    else if (code === 1) next.bold = true;
    else if (code === 3) next.italic = true;
    else if (code === 4) next.underline = true;
    else if (code === 22) next.bold = false;
    else if (code === 23) next.italic = false;
    else if (code === 24) next.underline = false;
    else if (code >= 30 && code <= 37) next.fg = code - 30;
    else if (code >= 90 && code <= 97) next.fg = code - 90 + 8;
    else if (code === 39) next.fg = null;
    else if (code >= 40 && code <= 47) next.bg = code - 40;
    else if (code >= 100 && code <= 107) next.bg = code - 100 + 8;
    else if (code === 49) next.bg = null;
    else if (code === 38 || code === 48) {
      // 256-colour (5;n): the 16 basic ones are kept, the rest ignored;
      // true colour (2;r;g;b) is skipped (the palette keeps contrast readable).
      const mode = codes[i + 1];
      if (mode === 5) {
        const n = codes[i + 2] ?? 0;
        if (n < 16) next[code === 38 ? "fg" : "bg"] = n;
        i += 2;
      } else if (mode === 2) i += 4;
    }
  }
  return next;
}

/** Splits one line into styled segments, starting from `initial` (styles carry across lines). */
export function parseAnsi(
  line: string,
  initial: AnsiStyle = PLAIN,
): { segments: AnsiSegment[]; style: AnsiStyle } {
  const segments: AnsiSegment[] = [];
  let style = initial;
  let last = 0;
  const push = (text: string) => {
    if (text) segments.push({ text, style });
  };
  for (const match of line.matchAll(ESCAPES)) {
    push(line.slice(last, match.index));
    last = match.index + match[0].length;
    if (match[2] === "m" && match[0].startsWith("\u001b[")) style = applySgr(style, match[1] ?? "");
  }
  push(line.slice(last));
  return { segments, style };
}

/** The text of a line with every escape sequence and control character removed. */
export function stripAnsi(line: string): string {
  return line.replace(ESCAPES, "");
}

/** CSS classes for a style (colours come from a fixed, contrast-checked palette). */
export function ansiClasses(style: AnsiStyle): string[] {
  const classes: string[] = [];
  if (style.fg !== null) classes.push(`ansi-fg-${style.fg}`);
  if (style.bg !== null) classes.push(`ansi-bg-${style.bg}`);
  if (style.bold) classes.push("ansi-bold");
  if (style.italic) classes.push("ansi-italic");
  if (style.underline) classes.push("ansi-underline");
  return classes;
}

/** A bounded scrollback: keeps the newest `max` items. */
export class Scrollback<T> {
  private items: T[] = [];
  dropped = 0;

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError("max must be a positive integer");
  }

  push(item: T): void {
    this.items.push(item);
    // Trim in batches so a busy console does not shift the array on every line.
    if (this.items.length > this.max + Math.ceil(this.max / 10)) {
      const excess = this.items.length - this.max;
      this.items.splice(0, excess);
      this.dropped += excess;
    }
  }

  get lines(): readonly T[] {
    return this.items.length > this.max ? this.items.slice(-this.max) : this.items;
  }
}

/** Remembers the last `max` keys: `seen(key)` is true for a key already given. */
export class RecentKeys {
  private readonly keys = new Set<string>();

  constructor(readonly max: number) {}

  seen(key: string): boolean {
    if (this.keys.has(key)) return true;
    this.keys.add(key);
    if (this.keys.size > this.max) {
      const oldest = this.keys.values().next().value as string;
      this.keys.delete(oldest);
    }
    return false;
  }
}
