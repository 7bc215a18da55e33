/**
 * Docker's multiplexed stream format (logs and attach of containers without a
 * TTY): frames of an 8-byte header — stream type (1 stdout, 2 stderr), three
 * zero bytes, a big-endian 32-bit payload size — then the payload. Frames may
 * arrive split across chunks or several per chunk.
 */
export type DockerStreamName = "stdin" | "stdout" | "stderr";

const STREAMS: Record<number, DockerStreamName> = { 0: "stdin", 1: "stdout", 2: "stderr" };
const HEADER = 8;

export class DockerFrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: DockerStreamName, payload: Buffer) => void) {}

  /** Feeds raw bytes; complete frames are emitted at once. */
  push(chunk: Buffer): void {
    let buffer = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buffer.length >= HEADER) {
      const stream = STREAMS[buffer[0]!];
      const size = buffer.readUInt32BE(4);
      if (!stream) {
        // Not a multiplexed stream (a TTY container): pass everything through as stdout.
        this.onFrame("stdout", buffer);
        buffer = Buffer.alloc(0);
        break;
      }
      if (buffer.length < HEADER + size) break;
      this.onFrame(stream, buffer.subarray(HEADER, HEADER + size));
      buffer = buffer.subarray(HEADER + size);
    }
    this.pending = Buffer.from(buffer);
  }

  /** Bytes of an incomplete frame still waiting for the rest. */
  get pendingBytes(): number {
    return this.pending.length;
  }
}
