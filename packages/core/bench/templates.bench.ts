/**
 * Template merge benchmarks. A generated template (full: 10,000 files, ~530 MB,
 * mixed sizes, 3 layers; quick: 1/20 of the files at 1/4 of the sizes) is
 * merged into a fresh directory and compared with `cp -a` / `cp -al` of the
 * merged tree, run interleaved in the same process (file-copy times on shared
 * VMs drift a lot). Dirty pages are flushed (`sync`, untimed) before each run.
 */
import { execFile } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  type BenchModule,
  interleave,
  median,
  type ScenarioResult,
  timeMs,
} from "../../../bench/lib.js";
import { type MergeLayersOptions, mergeLayers } from "../src/templates/index.js";

const run = promisify(execFile);

const VARIABLES = Object.fromEntries(
  Array.from({ length: 20 }, (_, i) => [`VAR_${i}`, `value-${i}`]),
);
/** What a template substitutes: its configuration files (~20% of the files). */
const SUBSTITUTE = ["config/**"];

/** Deterministic pseudo-random numbers (mulberry32): the same tree on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface GeneratedFile {
  layer: number;
  path: string;
  size: number;
  text: boolean;
}

/** Config-like text: every fifth line uses one of the 20 variables. */
function textBlock(): Buffer {
  const lines: string[] = [];
  for (let i = 0; lines.join("").length < 96 * 1024; i += 1) {
    lines.push(
      i % 5 === 0
        ? `setting.${i}=value \${VAR_${i % 20}} and more text\n`
        : `# plain comment line ${i} lorem ipsum dolor sit amet consectetur\n`,
    );
  }
  return Buffer.from(lines.join(""));
}

export function planTree(quick: boolean): GeneratedFile[] {
  const next = random(42);
  const scale = quick ? 0.25 : 1;
  const count = (n: number) => (quick ? Math.ceil(n / 20) : n);
  const between = (min: number, max: number) => Math.round((min + next() * (max - min)) * scale);
  const files: GeneratedFile[] = [];
  // Small text files as a game server tree has them: configuration (20%, where
  // placeholders live and what templates substitute), translations (30%) and
  // other data and scripts (50%).
  const small = (i: number) => {
    const kind = i % 10;
    const dir = `c${i % 40}/s${(i >> 3) % 10}`;
    if (kind < 2) return `config/${dir}/file${i}${kind === 0 ? ".yml" : ".properties"}`;
    if (kind < 5) return `lang/${dir}/file${i}.json`;
    return `data/${dir}/file${i}${kind < 8 ? ".txt" : ".cfg"}`;
  };
  // [small, medium, large] per layer; upper layers also override some lower paths.
  const layers = [
    [6000, 700, 80],
    [2000, 150, 15],
    [1000, 50, 5],
  ] as const;
  let smallIndex = 0;
  let mediumIndex = 0;
  let largeIndex = 0;
  layers.forEach(([smallCount, mediumCount, largeCount], layer) => {
    const overrides = layer === 1 ? count(300) : layer === 2 ? count(200) : 0;
    for (let i = 0; i < count(smallCount); i += 1) {
      const path = i < overrides ? small(Math.floor(next() * smallIndex)) : small(smallIndex++);
      files.push({ layer, path, size: between(1024, 16 * 1024), text: true });
    }
    for (let i = 0; i < count(mediumCount); i += 1, mediumIndex += 1) {
      files.push({
        layer,
        path: `plugins/p${mediumIndex % 30}/lib${mediumIndex}.jar`,
        size: between(64 * 1024, 512 * 1024),
        text: false,
      });
    }
    for (let i = 0; i < count(largeCount); i += 1, largeIndex += 1) {
      files.push({
        layer,
        path: `libraries/l${largeIndex % 10}/big${largeIndex}.jar`,
        size: between(1024 * 1024, 4 * 1024 * 1024),
        text: false,
      });
    }
  });
  // Overrides may pick the same lower path twice in one layer: keep one.
  const seen = new Set<string>();
  return files.filter((file) => {
    const key = `${file.layer}:${file.path}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Writes the planned layers under `root/layer<N>`; returns the layer folders. */
export async function generateTree(root: string, files: GeneratedFile[]): Promise<string[]> {
  const text = textBlock();
  const binary = Buffer.alloc(4 * 1024 * 1024);
  const next = random(7);
  for (let i = 0; i < binary.length; i += 4) binary.writeUInt32LE(Math.floor(next() * 2 ** 32), i);
  binary[0] = 0; // binary for sure (NUL in the first bytes)
  const directories = new Set(
    files.map((file) => join(root, `layer${file.layer}`, file.path, "..")),
  );
  for (const directory of directories) await mkdir(directory, { recursive: true });
  let index = 0;
  const worker = async () => {
    while (index < files.length) {
      const file = files[index++]!;
      const source = file.text ? text : binary;
      const start = file.size < source.length ? (index * 997) % (source.length - file.size) : 0;
      const content =
        file.size <= source.length
          ? source.subarray(start, start + file.size)
          : Buffer.concat(
              Array.from({ length: Math.ceil(file.size / source.length) }, () => source),
            ).subarray(0, file.size);
      await writeFile(join(root, `layer${file.layer}`, file.path), content);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return [...new Set(files.map((file) => file.layer))]
    .sort()
    .map((layer) => join(root, `layer${layer}`));
}

const sync = () => run("sync");

/** Seconds `fn` takes writing into a fresh `out` directory, which is then removed (untimed). */
function timedInto(
  out: () => string,
  fn: (target: string) => Promise<unknown>,
): () => Promise<number> {
  return async () => {
    const target = out();
    await sync();
    const seconds = (await timeMs(() => fn(target))) / 1000;
    await rm(target, { recursive: true, force: true });
    return seconds;
  };
}

function ratioResult(
  id: string,
  name: string,
  measured: { ours: number[]; baseline: number[] },
  baselineName: string,
  limit: number,
  extra: Record<string, unknown>,
): ScenarioResult {
  const ratio = median(measured.ours) / median(measured.baseline);
  return {
    id,
    name,
    unit: "s",
    better: "lower",
    runs: measured.ours,
    baseline: { name: baselineName, value: median(measured.baseline), runs: measured.baseline },
    target: `≤ ${limit}× ${baselineName}`,
    met: ratio <= limit,
    extra: { ...extra, ratio: Number(ratio.toFixed(3)) },
  };
}

const bench: BenchModule = {
  name: "templates",
  scenarios: [
    "templates.merge.copy",
    "templates.merge.link",
    "templates.merge.substitute",
    "templates.reprepare.one-file",
  ],
  async run(context, selected) {
    const wanted = bench.scenarios.filter(selected);
    if (wanted.length === 0) return [];
    // Odd and generous: copy times on shared VMs swing by several times between runs.
    const runs = context.quick ? 3 : 5;
    const plan = planTree(context.quick);
    const bytes = plan.reduce((sum, file) => sum + file.size, 0);
    context.log(`generating ${plan.length} files, ${(bytes / 2 ** 20).toFixed(0)} MiB in 3 layers`);
    const layers = await generateTree(join(context.tmpDir, "layers"), plan);
    let counter = 0;
    const fresh = () => join(context.tmpDir, "out", `run-${counter++}`);
    const merge = (target: string, extra: Partial<MergeLayersOptions> = {}) =>
      mergeLayers({ layers, target, ...extra });

    // The merged tree, once, as the input of the cp baselines.
    const reference = join(context.tmpDir, "reference");
    const merged = await merge(reference);
    const info = {
      files: merged.stats.files,
      mebibytes: Number((merged.stats.bytes / 2 ** 20).toFixed(1)),
    };
    context.log(`merged: ${info.files} files, ${info.mebibytes} MiB`);
    const results: ScenarioResult[] = [];

    if (selected("templates.merge.copy")) {
      const measured = await interleave(
        runs,
        timedInto(fresh, (target) => merge(target)),
        timedInto(fresh, (target) => run("cp", ["-a", reference, target])),
      );
      results.push(
        ratioResult(
          "templates.merge.copy",
          "merge 3 layers, copy policy, fresh dir",
          measured,
          "cp -a",
          0.8,
          info,
        ),
      );
    }

    if (selected("templates.merge.link")) {
      let methods: Record<string, number> = {};
      const measured = await interleave(
        runs,
        timedInto(fresh, async (target) => {
          methods = (await merge(target, { files: { link: ["**"] } })).stats.methods;
        }),
        timedInto(fresh, (target) => run("cp", ["-al", reference, target])),
      );
      results.push(
        ratioResult(
          "templates.merge.link",
          "merge 3 layers, every file linked",
          measured,
          "cp -al",
          2,
          {
            ...info,
            methods,
          },
        ),
      );
    }

    if (selected("templates.merge.substitute")) {
      let substituted = 0;
      const measured = await interleave(
        runs,
        timedInto(fresh, async (target) => {
          substituted = (
            await merge(target, { files: { substitute: SUBSTITUTE }, variables: VARIABLES })
          ).substitution.files;
        }),
        timedInto(fresh, (target) => merge(target)),
      );
      results.push(
        ratioResult(
          "templates.merge.substitute",
          "merge with substitution of the config files (vs the same merge without)",
          measured,
          "merge without substitution",
          1.2,
          { ...info, substitutedFiles: substituted },
        ),
      );
    }

    if (selected("templates.reprepare.one-file")) {
      const options = { files: { substitute: SUBSTITUTE }, variables: VARIABLES };
      const instance = join(context.tmpDir, "instance");
      await merge(instance, options);
      const top = plan.filter((file) => file.layer === 2 && file.text)[0]!;
      const written: number[] = [];
      let version = 0;
      const measured = await interleave(
        runs,
        async () => {
          version += 1;
          await writeFile(join(layers[2]!, top.path), `changed=${version}\n`);
          await sync();
          let result: Awaited<ReturnType<typeof merge>> | undefined;
          const seconds =
            (await timeMs(async () => {
              result = await merge(instance, options);
            })) / 1000;
          written.push(result!.stats.written);
          return seconds;
        },
        timedInto(fresh, (target) => merge(target, options)),
      );
      const result = ratioResult(
        "templates.reprepare.one-file",
        "re-prepare after one top-layer file changed (vs a fresh prepare)",
        measured,
        "fresh prepare",
        0.25,
        { ...info, filesWrittenPerRun: written },
      );
      result.met = result.met === true && written.every((count) => count === 1);
      results.push(result);
    }
    return results;
  },
};

export default bench;
