// HTTP load generator, run as its own process (`node bench/load-generator.mjs
// <options.json>`) so that on a small machine the server under test keeps its
// core and the figures are not skewed by the client sharing its event loop.
// Plain JavaScript on purpose: it starts with the bare `node`, no loader.
//
// Options: { url, method, headers, body (string; every "__N__" becomes a counter),
//   tokens? (bearer tokens used in turn, one per simulated client),
//   mode: "closed" (concurrency clients, each sends as soon as answered) |
//         "open" (rate requests/s whatever the answers, at most maxInFlight),
//   concurrency, rate, maxInFlight, durationMs, total? (closed mode: stop after that many) }
// Prints one JSON line: counts, achieved rate and latency percentiles (ms).
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";

const options = JSON.parse(readFileSync(process.argv[2], "utf8"));
const url = new URL(options.url);
const agent = new Agent({
  keepAlive: true,
  maxSockets: Math.max(1, options.mode === "open" ? options.maxInFlight : options.concurrency),
});
const latencies = [];
const statuses = {};
let counter = 0;
let errors = 0;
let inFlight = 0;
let dropped = 0;
let firstError = null;

function send() {
  const n = counter++;
  const body = options.body === undefined ? undefined : options.body.replaceAll("__N__", String(n));
  const headers = { ...options.headers };
  if (options.tokens?.length)
    headers.authorization = `Bearer ${options.tokens[n % options.tokens.length]}`;
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-length"] = Buffer.byteLength(body);
  }
  const start = performance.now();
  inFlight += 1;
  return new Promise((resolve) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: options.method,
        headers,
        agent,
      },
      (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("end", () => {
          inFlight -= 1;
          latencies.push(performance.now() - start);
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
          if (res.statusCode >= 400) {
            errors += 1;
            firstError ??= `${res.statusCode} ${Buffer.concat(chunks).toString("utf8").slice(0, 300)}`;
          }
          resolve();
        });
      },
    );
    req.on("error", (error) => {
      inFlight -= 1;
      errors += 1;
      firstError ??= error.message;
      resolve();
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const started = performance.now();
const deadline = started + options.durationMs;
if (options.mode === "open") {
  // Requests are due on a fixed schedule; one that cannot be sent because too
  // many are waiting is counted as dropped (the server is not keeping up).
  const interval = 1000 / options.rate;
  const pending = [];
  let due = started;
  while (due < deadline) {
    const now = performance.now();
    while (due <= now && due < deadline) {
      if (inFlight < options.maxInFlight) pending.push(send());
      else dropped += 1;
      due += interval;
    }
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, Math.min(5, due - performance.now()))),
    );
  }
  await Promise.all(pending);
} else {
  // `total` (optional) stops after that many requests, whichever comes first.
  const total = options.total ?? Number.POSITIVE_INFINITY;
  const client = async () => {
    while (performance.now() < deadline && counter < total) await send();
  };
  await Promise.all(Array.from({ length: options.concurrency }, client));
}
const elapsedMs = performance.now() - started;
const cpu = process.cpuUsage();
agent.destroy();

latencies.sort((a, b) => a - b);
const pick = (p) =>
  latencies.length === 0
    ? null
    : latencies[
        Math.min(latencies.length - 1, Math.max(0, Math.ceil((p / 100) * latencies.length) - 1))
      ];
process.stdout.write(
  `${JSON.stringify({
    completed: latencies.length,
    errors,
    dropped,
    statuses,
    firstError,
    elapsedMs,
    perSecond: ((latencies.length - errors) * 1000) / elapsedMs,
    p50: pick(50),
    p99: pick(99),
    max: latencies.at(-1) ?? null,
    // Near 100: the client, not the server, was the limit.
    clientCpuPercent: ((cpu.user + cpu.system) / 1000 / elapsedMs) * 100,
  })}\n`,
);
