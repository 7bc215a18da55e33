/**
 * Model-based property tests: random layer stacks (files, whiteouts, opaque
 * markers, file/directory replacements) merged on disk must equal an
 * in-memory model of the documented semantics; re-preparing from any stack to
 * any other must equal a fresh merge of the new stack plus the server's files,
 * and a second re-prepare must write nothing.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { mergeLayers } from "../../src/templates/index.js";
import { fileContents, writeTree } from "./fixtures.js";

type LayerModel = { files: Record<string, string>; whiteouts: string[]; opaque: string[] };

const PATHS = ["a", "b", "d", "d/a", "d/b", "d/e", "d/e/f", "x/y"];

/** Drops entries that cannot coexist in one folder (a file that is also a parent). */
function consistent(files: Record<string, string>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const path of Object.keys(files).sort()) {
    const ancestors = path
      .split("/")
      .slice(0, -1)
      .map((_, i, parts) => parts.slice(0, i + 1).join("/"));
    if (ancestors.some((ancestor) => ancestor in result)) continue;
    result[path] = files[path]!;
  }
  return result;
}

const layerArbitrary = fc
  .record({
    files: fc.dictionary(fc.constantFrom(...PATHS), fc.constantFrom("1", "2", "3")),
    whiteouts: fc.uniqueArray(fc.constantFrom("a", "d", "d/a", "d/e", "x"), { maxLength: 2 }),
    opaque: fc.uniqueArray(fc.constantFrom("d", "x"), { maxLength: 1 }),
  })
  .map(({ files, whiteouts, opaque }): LayerModel => {
    const clean = consistent(files);
    const isFile = (path: string) => path in clean;
    const underFile = (path: string) =>
      path
        .split("/")
        .some((_, i, parts) => i < parts.length - 1 && isFile(parts.slice(0, i + 1).join("/")));
    return {
      files: clean,
      // Markers live in a directory of this layer: never under one of its files.
      whiteouts: whiteouts.filter((w) => !underFile(w)),
      opaque: opaque.filter((o) => !isFile(o) && !underFile(`${o}/x`)),
    };
  });

/** The documented semantics, on a flat map of files. */
function model(layers: LayerModel[]): Record<string, string> {
  let state: Record<string, string> = {};
  const dropUnder = (prefix: string) => {
    state = Object.fromEntries(
      Object.entries(state).filter(([path]) => path !== prefix && !path.startsWith(`${prefix}/`)),
    );
  };
  for (const layer of layers) {
    for (const dir of layer.opaque) {
      state = Object.fromEntries(
        Object.entries(state).filter(([path]) => !path.startsWith(`${dir}/`)),
      );
    }
    for (const whiteout of layer.whiteouts) dropUnder(whiteout);
    // Every directory this layer has (holding files or markers) replaces a lower file of that name.
    const directories = new Set<string>();
    const addParents = (path: string) => {
      const parts = path.split("/");
      for (let i = 1; i < parts.length; i += 1) directories.add(parts.slice(0, i).join("/"));
    };
    for (const path of Object.keys(layer.files)) addParents(path);
    for (const whiteout of layer.whiteouts) addParents(whiteout);
    for (const dir of layer.opaque) addParents(`${dir}/.wh..wh..opq`);
    for (const dir of directories) if (dir in state) delete state[dir];
    for (const [path, content] of Object.entries(layer.files)) {
      dropUnder(path);
      state[path] = content;
    }
  }
  return state;
}

async function writeLayer(root: string, name: string, layer: LayerModel): Promise<string> {
  const dir = join(root, name);
  const spec: Record<string, string> = { ...layer.files };
  for (const whiteout of layer.whiteouts) {
    const slash = whiteout.lastIndexOf("/");
    spec[
      slash < 0 ? `.wh.${whiteout}` : `${whiteout.slice(0, slash)}/.wh.${whiteout.slice(slash + 1)}`
    ] = "";
  }
  for (const dir of layer.opaque) spec[`${dir}/.wh..wh..opq`] = "";
  await writeTree(dir, spec);
  return dir;
}

const stack = fc.array(layerArbitrary, { minLength: 1, maxLength: 3 });

describe("mergeLayers (properties)", () => {
  it("matches the model of layer semantics", async () => {
    await fc.assert(
      fc.asyncProperty(stack, async (layers) => {
        const root = await mkdtemp(join(tmpdir(), "orch-prop-"));
        try {
          const dirs = await Promise.all(
            layers.map((layer, i) => writeLayer(root, `l${i}`, layer)),
          );
          await mergeLayers({ layers: dirs, target: join(root, "out") });
          expect(await fileContents(join(root, "out"))).toEqual(model(layers));
        } finally {
          await rm(root, { recursive: true, force: true });
        }
      }),
      { numRuns: 25 },
    );
  });

  it("re-prepares from any stack to any other like a fresh merge, keeping server files; then writes nothing", async () => {
    await fc.assert(
      fc.asyncProperty(stack, stack, async (before, after) => {
        const root = await mkdtemp(join(tmpdir(), "orch-prop-"));
        try {
          const first = await Promise.all(
            before.map((layer, i) => writeLayer(root, `a${i}`, layer)),
          );
          const second = await Promise.all(
            after.map((layer, i) => writeLayer(root, `b${i}`, layer)),
          );
          const target = join(root, "out");
          await mergeLayers({ layers: first, target });
          await writeFile(join(target, "server-data"), "kept");
          const result = await mergeLayers({ layers: second, target });
          expect(await fileContents(target)).toEqual({ ...model(after), "server-data": "kept" });
          expect(result.stats.files).toBe(Object.keys(model(after)).length);
          expect((await mergeLayers({ layers: second, target })).stats.written).toBe(0);
        } finally {
          await rm(root, { recursive: true, force: true });
        }
      }),
      { numRuns: 25 },
    );
  });
});
