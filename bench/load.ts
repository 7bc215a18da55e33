/**
 * Drives an HTTP server with `load-generator.mjs` in a separate process (the
 * server under test keeps its own core) and returns what the generator measured.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const GENERATOR = fileURLToPath(new URL("./load-generator.mjs", import.meta.url));

export interface LoadOptions {
  url: string;
  method: "GET" | "POST";
  headers?: Record<string, string>;
  /** JSON text; each `__N__` is replaced by a per-request counter (unique names). */
  body?: string;
  /** Bearer tokens used in turn (one per simulated client). */
  tokens?: readonly string[];
  durationMs: number;
  /** Closed mode: stop after this many requests (or `durationMs`, whichever first). */
  total?: number;
  /** closed: `concurrency` clients back to back; open: `rate` requests/s. */
  mode: "closed" | "open";
  concurrency?: number;
  rate?: number;
  maxInFlight?: number;
}

export interface LoadResult {
  completed: number;
  errors: number;
  /** Open mode: requests due while `maxInFlight` were still waiting. */
  dropped: number;
  statuses: Record<string, number>;
  firstError: string | null;
  elapsedMs: number;
  /** Successful responses per second. */
  perSecond: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
  /** CPU % (of one core) the generator itself used: near 100, it was the limit. */
  clientCpuPercent: number;
}

let runs = 0;

export async function runLoad(tmpDir: string, options: LoadOptions): Promise<LoadResult> {
  const file = join(tmpDir, `load-${process.pid}-${runs++}.json`);
  await writeFile(file, JSON.stringify({ concurrency: 1, maxInFlight: 256, ...options }));
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [GENERATOR, file],
      { maxBuffer: 16 * 1024 * 1024, timeout: options.durationMs + 120_000 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`load generator failed: ${error.message} ${stderr}`));
          return;
        }
        try {
          resolve(JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as LoadResult);
        } catch {
          reject(new Error(`load generator printed no result: ${stdout} ${stderr}`));
        }
      },
    );
  });
}
