/**
 * Follows one log file the server writes (its stdout or stderr, opened in
 * append mode) into the instance's backlog. The file, not a pipe, carries the
 * output so the server never depends on the agent being alive; inotify
 * (`fs.watch`) wakes the reader at once, a slow poll covers missed events.
 */
import { type FSWatcher, watch } from "node:fs";
import { type FileHandle, open, truncate } from "node:fs/promises";
import { LineSplitter } from "@orchestrator/core";

export interface LogFileTailerOptions {
  /** Called for each complete line. */
  onLine: (line: string) => void;
  /** Start this many bytes before the end (the first, partial line is skipped); default: from 0. */
  lastBytes?: number;
  /** Keep following (false: read what is there once). */
  follow: boolean;
  /** Truncate the file after reading once it is larger than this (bounded disk use). */
  maxFileBytes: number;
  /** Fallback poll interval. */
  pollIntervalMs?: number;
}

export class LogFileTailer {
  private handle: FileHandle | null = null;
  private watcher: FSWatcher | null = null;
  private poll: NodeJS.Timeout | null = null;
  private offset = 0;
  private reading: Promise<void> | null = null;
  private again = false;
  private closed = false;
  private skipPartial = false;
  private readonly splitter: LineSplitter;
  private readonly buffer = Buffer.allocUnsafe(64 * 1024);

  constructor(
    private readonly path: string,
    private readonly options: LogFileTailerOptions,
  ) {
    this.splitter = new LineSplitter((line) => {
      if (this.skipPartial) {
        this.skipPartial = false;
        return;
      }
      options.onLine(line);
    });
  }

  /** Opens the file (a missing file counts as empty) and reads what is there. */
  async start(): Promise<void> {
    try {
      this.handle = await open(this.path, "r");
    } catch {
      return;
    }
    const { size } = await this.handle.stat();
    const lastBytes = this.options.lastBytes;
    if (lastBytes !== undefined && size > lastBytes) {
      this.offset = size - lastBytes;
      this.skipPartial = true;
    }
    if (this.options.follow) {
      try {
        this.watcher = watch(this.path, { persistent: false }, () => this.wake());
        this.watcher.on("error", () => {}); // the poll carries on
      } catch {
        // No inotify (or the file went away): the poll alone follows it.
      }
      this.poll = setInterval(() => this.wake(), this.options.pollIntervalMs ?? 1000);
      this.poll.unref();
    }
    await this.readAvailable();
  }

  /** Reads whatever was appended since the last read. */
  wake(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = this.readAvailable().finally(() => {
      this.reading = null;
      if (this.again && !this.closed) {
        this.again = false;
        void this.wake();
      }
    });
    return this.reading;
  }

  /** Final read, including a last line without newline; then stops following. */
  async drain(): Promise<void> {
    await this.wake();
    await this.readAvailable();
    this.splitter.flush();
    await this.close();
  }

  /** Stops following and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.close();
    if (this.poll) clearInterval(this.poll);
    await this.reading?.catch(() => {});
    await this.handle?.close().catch(() => {});
    this.handle = null;
  }

  private async readAvailable(): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    try {
      let { size } = await handle.stat();
      if (size < this.offset) this.offset = 0; // truncated by someone: start over
      while (this.offset < size) {
        const { bytesRead } = await handle.read(this.buffer, 0, this.buffer.length, this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        this.splitter.push(this.buffer.subarray(0, bytesRead));
        if (this.offset >= size) size = (await handle.stat()).size;
      }
      if (this.options.follow && this.offset > this.options.maxFileBytes) {
        // The server appends (O_APPEND), so after truncation it writes at 0 again.
        // Lines written between the read above and this call are lost: rare, bounded.
        await truncate(this.path, 0);
        this.offset = 0;
      }
    } catch {
      // The file was removed under us (instance removed): nothing more to read.
    }
  }
}
