import { StringDecoder } from "node:string_decoder";

/** Lines longer than this are cut into pieces (a backlog of huge lines would be unbounded). */
export const DEFAULT_MAX_LINE_LENGTH = 8192;

/**
 * Turns a byte stream into lines: UTF-8 decoded across chunk boundaries,
 * `\n` or `\r\n` terminated, cut at `maxLineLength`. A partial last line is
 * held until more arrives or `flush()` is called.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder("utf8");
  private pending = "";

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLineLength = DEFAULT_MAX_LINE_LENGTH,
  ) {
    if (!Number.isInteger(maxLineLength) || maxLineLength < 1) {
      throw new RangeError("maxLineLength must be a positive integer");
    }
  }

  /** Feeds a chunk; complete lines are emitted at once. */
  push(chunk: Uint8Array | string): void {
    const text = typeof chunk === "string" ? chunk : this.decoder.write(chunk as Buffer);
    let start = 0;
    let newline = text.indexOf("\n", start);
    while (newline !== -1) {
      this.emit(this.pending + text.slice(start, newline), true);
      this.pending = "";
      start = newline + 1;
      newline = text.indexOf("\n", start);
    }
    this.pending += text.slice(start);
    while (this.pending.length > this.maxLineLength) {
      this.onLine(this.pending.slice(0, this.maxLineLength));
      this.pending = this.pending.slice(this.maxLineLength);
    }
  }

  /** Emits what is left as a last line (the stream ended without a newline). */
  flush(): void {
    const rest = this.pending + this.decoder.end();
    this.pending = "";
    if (rest !== "") this.emit(rest, false);
  }

  private emit(raw: string, terminated: boolean): void {
    let line = terminated && raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    while (line.length > this.maxLineLength) {
      this.onLine(line.slice(0, this.maxLineLength));
      line = line.slice(this.maxLineLength);
    }
    this.onLine(line);
  }
}
