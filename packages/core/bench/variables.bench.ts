/**
 * Variable substitution benchmarks, each against `envsubst` (gettext-base)
 * run interleaved in the same process:
 *  - `variables.substitute`: one 100 MB text file with 20 variables (quick:
 *    10 MB), MB/s;
 *  - `variables.peak-memory`: the peak RSS growth during those substitutions
 *    (and, in full mode, for a 1 GiB file: memory must not depend on the file size);
 *  - a 10,000-file tree (quick: 300 files) through `mergeLayers` with
 *    substitution of every file, vs `envsubst` run once per file.
 */
import { spawn } from "node:child_process";
import { mkdir, open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  type BenchModule,
  interleave,
  median,
  type ScenarioResult,
  timeMs,
} from "../../../bench/lib.js";
import { mergeLayers } from "../src/templates/index.js";
import { VariableSubstituter } from "../src/variables/index.js";

const VARIABLES = Object.fromEntries(
  Array.from({ length: 20 }, (_, i) => [`VAR_${i}`, `value-${i}`]),
);
const MiB = 1024 * 1024;

/** Config-like text: every fifth line uses one of the 20 variables. */
function textBlock(bytes: number): Buffer {
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i += 1) {
    const line =
      i % 5 === 0
        ? `setting.${i}=value \${VAR_${i % 20}} and more text\n`
        : `# plain comment line ${i} lorem ipsum dolor sit amet consectetur\n`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join(""));
}

async function writeBigFile(path: string, bytes: number): Promise<void> {
  const block = textBlock(MiB);
  const handle = await open(path, "w");
  try {
    for (let written = 0; written < bytes; written += block.length) await handle.write(block);
  } finally {
    await handle.close();
  }
}

/** Runs a program with stdin/stdout redirected to files; no shell involved. */
async function runRedirected(
  command: string,
  args: string[],
  input: string,
  output: string,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const stdin = await open(input, "r");
  const stdout = await open(output, "w");
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(command, args, { stdio: [stdin.fd, stdout.fd, "inherit"], env });
      child.on("error", reject);
      child.on("exit", (code) =>
        code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`)),
      );
    });
  } finally {
    await stdin.close();
    await stdout.close();
  }
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "inherit", env });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`)),
    );
  });
}

const gc = (() => {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

/** Substitutes `input` into `output` and returns [ms, peak RSS growth in bytes]. */
async function substituteMeasured(input: string, output: string): Promise<[number, number]> {
  await rm(output, { force: true });
  gc();
  gc();
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 2);
  try {
    const ms = await timeMs(() => new VariableSubstituter(VARIABLES).substituteFile(input, output));
    peak = Math.max(peak, process.memoryUsage.rss());
    return [ms, peak - before];
  } finally {
    clearInterval(sampler);
  }
}

const envsubstEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...VARIABLES };

const bench: BenchModule = {
  name: "variables",
  scenarios: ["variables.substitute", "variables.peak-memory", "variables.substitute.tree"],
  async run(context, selected) {
    const results: ScenarioResult[] = [];
    const runs = context.quick ? 3 : 5;

    // The peak memory is measured during the same substitutions (and the 1 GiB one).
    if (selected("variables.substitute") || selected("variables.peak-memory")) {
      const bytes = (context.quick ? 10 : 100) * MiB;
      const input = join(context.tmpDir, "big.txt");
      await writeBigFile(input, bytes);
      const ours = join(context.tmpDir, "big.ours");
      const theirs = join(context.tmpDir, "big.envsubst");
      const peaks: number[] = [];
      const measured = await interleave(
        runs,
        async () => {
          const [ms, peak] = await substituteMeasured(input, ours);
          peaks.push(peak);
          return bytes / MiB / (ms / 1000);
        },
        async () => {
          const ms = await timeMs(() => runRedirected("envsubst", [], input, theirs, envsubstEnv));
          return bytes / MiB / (ms / 1000);
        },
      );
      const extra: Record<string, unknown> = {
        fileMiB: bytes / MiB,
        peakRssGrowthMiB: Number((Math.max(...peaks) / MiB).toFixed(1)),
      };
      let memoryOk = Math.max(...peaks) < 64 * MiB;
      if (!context.quick) {
        // Memory must not grow with the file: substitute a 1 GiB file once.
        const huge = join(context.tmpDir, "huge.txt");
        await writeBigFile(huge, 1024 * MiB);
        const [ms, peak] = await substituteMeasured(huge, join(context.tmpDir, "huge.ours"));
        extra.peakRssGrowthMiB1GiB = Number((peak / MiB).toFixed(1));
        extra.mibPerSecond1GiB = Number((1024 / (ms / 1000)).toFixed(0));
        memoryOk &&= peak < 64 * MiB;
        await rm(huge, { force: true });
        await rm(join(context.tmpDir, "huge.ours"), { force: true });
      }
      const ratio = median(measured.ours) / median(measured.baseline);
      // One figure (MiB) per measured substitution, the 1 GiB one included in full mode.
      const peakRuns = [
        ...peaks.map((peak) => Number((peak / MiB).toFixed(1))),
        ...(typeof extra.peakRssGrowthMiB1GiB === "number" ? [extra.peakRssGrowthMiB1GiB] : []),
      ];
      if (selected("variables.peak-memory"))
        results.push({
          id: "variables.peak-memory",
          name: `peak RSS growth while substituting a ${bytes / MiB} MiB${context.quick ? "" : " and a 1 GiB"} file`,
          unit: "MiB",
          better: "lower",
          runs: peakRuns,
          baseline: null,
          target: "< 64 MiB, independent of the file size",
          met: memoryOk,
          extra: { maxMiB: Math.max(...peakRuns), fileMiB: bytes / MiB },
        });
      if (selected("variables.substitute"))
        results.push({
          id: "variables.substitute",
          name: `substitute one ${bytes / MiB} MiB text file, 20 variables`,
          unit: "MiB/s",
          better: "higher",
          runs: measured.ours,
          baseline: { name: "envsubst", value: median(measured.baseline), runs: measured.baseline },
          target: "≥ 1.0× envsubst, peak RSS growth < 64 MiB",
          met: ratio >= 1 && memoryOk,
          extra: { ...extra, ratio: Number(ratio.toFixed(2)) },
        });
    }

    if (selected("variables.substitute.tree")) {
      const count = context.quick ? 300 : 10_000;
      const source = join(context.tmpDir, "tree");
      const block = textBlock(64 * 1024);
      for (let i = 0; i < count; i += 1) {
        const dir = join(source, `c${i % 40}`, `s${(i >> 3) % 10}`);
        if (i < 400) await mkdir(dir, { recursive: true });
        const size = 1024 + ((i * 7919) % (15 * 1024));
        const start = (i * 997) % (block.length - size);
        await writeFile(join(dir, `file${i}.properties`), block.subarray(start, start + size));
      }
      let counter = 0;
      const fresh = () => join(context.tmpDir, "out", `run-${counter++}`);
      // envsubst once per file, driven by one shell loop (the cheapest way to run it per file).
      const script =
        'cd "$1" && find . -type d | (cd "$2" && xargs mkdir -p) && find . -type f | while IFS= read -r f; do envsubst < "$f" > "$2/$f"; done';
      const measured = await interleave(
        context.quick ? 3 : 3,
        async () => {
          const target = fresh();
          const ms = await timeMs(() =>
            mergeLayers({
              layers: [source],
              target,
              files: { substitute: ["**"] },
              variables: VARIABLES,
            }),
          );
          await rm(target, { recursive: true, force: true });
          return ms;
        },
        async () => {
          const target = fresh();
          await mkdir(target, { recursive: true });
          const ms = await timeMs(() =>
            run("sh", ["-c", script, "sh", source, target], envsubstEnv),
          );
          await rm(target, { recursive: true, force: true });
          return ms;
        },
        // No warm-up round at full size: envsubst once per file is ~20 s a round.
        { warmup: context.quick ? 1 : 0 },
      );
      const ratio = median(measured.ours) / median(measured.baseline);
      results.push({
        id: "variables.substitute.tree",
        name: `substitute a ${count}-file tree (mergeLayers) vs envsubst per file`,
        unit: "ms",
        better: "lower",
        runs: measured.ours,
        baseline: {
          name: "envsubst per file",
          value: median(measured.baseline),
          runs: measured.baseline,
        },
        target: "≤ 0.2× envsubst per file (≥ 5× faster)",
        met: ratio <= 0.2,
        extra: {
          files: count,
          ratio: Number(ratio.toFixed(3)),
          speedup: Number((1 / ratio).toFixed(1)),
        },
      });
    }
    return results;
  },
};

export default bench;
