import { randomFillSync } from "node:crypto";
import type { IdGenerator } from "./id-generator.js";

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));
// Random bytes drawn in blocks: one system call per 256 ids instead of one each.
const pool = new Uint8Array(2048);
let poolOffset = pool.length;
let lastMs = -1;
let counter = 0;

function randomBytes(count: number): Uint8Array {
  if (poolOffset + count > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const bytes = pool.subarray(poolOffset, poolOffset + count);
  poolOffset += count;
  return bytes;
}

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter that
 * keeps ids of one process increasing within a millisecond, then 62 random
 * bits. Still unguessable, but ids made close in time sort together.
 */
export function uuidV7(nowMs: number = Date.now()): string {
  if (nowMs > lastMs) {
    lastMs = nowMs;
    // A random start leaves room to count up within the millisecond.
    counter = randomBytes(1)[0]! << 2;
  } else {
    counter += 1;
    if (counter > 0xfff) {
      // 4,096 ids in one millisecond: borrow the next one (still unique, still ordered).
      lastMs += 1;
      counter = 0;
    }
  }
  const ms = lastMs;
  const random = randomBytes(8);
  const bytes = new Uint8Array(16);
  bytes[0] = Math.floor(ms / 2 ** 40) & 0xff;
  bytes[1] = Math.floor(ms / 2 ** 32) & 0xff;
  bytes[2] = (ms >>> 24) & 0xff;
  bytes[3] = (ms >>> 16) & 0xff;
  bytes[4] = (ms >>> 8) & 0xff;
  bytes[5] = ms & 0xff;
  bytes[6] = 0x70 | (counter >>> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (random[0]! & 0x3f);
  bytes.set(random.subarray(1, 8), 9);
  let text = "";
  for (let i = 0; i < 16; i += 1) {
    if (i === 4 || i === 6 || i === 8 || i === 10) text += "-";
    text += HEX[bytes[i]!];
  }
  return text;
}

/**
 * UUIDv7 ids (`inst_0193…`). A database indexes them like a counter: new rows
 * go to the end of each index instead of a random page of it, which is what
 * an insert-heavy store (many creations a second, on SQLite or InnoDB) pays for.
 */
export const timeOrderedIdGenerator: IdGenerator = {
  next: (prefix) => (prefix ? `${prefix}_${uuidV7()}` : uuidV7()),
};
