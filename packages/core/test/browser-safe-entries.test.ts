/**
 * The subpaths the web panel loads in the browser (`./template-document`,
 * `./lifecycle`) must not reach Node built-ins or any npm package through
 * their module graph: a bundler would fail on them, or worse, ship a shim.
 * The graph is walked over the source (always) and over the built files
 * (when `npm run build` has run, as in CI).
 */
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const packageRoot = fileURLToPath(new URL("..", import.meta.url));
const manifest = JSON.parse(readFileSync(resolve(packageRoot, "package.json"), "utf8")) as {
  exports: Record<string, Record<string, string>>;
};

const BROWSER_SAFE_SUBPATHS = ["./template-document", "./lifecycle"] as const;
const nodeBuiltins = new Set(builtinModules);

interface ModuleGraph {
  /** Every file reached, relative to the package root. */
  files: string[];
  /** Every import that is not a relative path, with the file that makes it. */
  external: { from: string; specifier: string }[];
}

/**
 * Follows every import, export-from and dynamic import, type-only ones
 * included (stricter than what survives compilation, and it keeps the types
 * the panel reads browser-clean too). `.js` specifiers map to `.ts` in src.
 */
function moduleGraph(entry: string): ModuleGraph {
  const seen = new Set<string>();
  const external: ModuleGraph["external"] = [];
  const queue = [entry];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    const { importedFiles } = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
    for (const { fileName: specifier } of importedFiles) {
      if (!specifier.startsWith(".")) {
        external.push({ from: relative(packageRoot, file), specifier });
        continue;
      }
      const target = resolve(dirname(file), specifier);
      const candidates = file.endsWith(".ts") ? [target.replace(/\.js$/, ".ts"), target] : [target];
      const found = candidates.find((candidate) => existsSync(candidate));
      if (!found) throw new Error(`${relative(packageRoot, file)}: cannot resolve ${specifier}`);
      queue.push(found);
    }
  }
  return { files: [...seen].map((file) => relative(packageRoot, file)).sort(), external };
}

function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith("node:") || nodeBuiltins.has(specifier.split("/")[0] ?? specifier);
}

describe.each(BROWSER_SAFE_SUBPATHS)("@orchestrator/core%s is browser-safe", (subpath) => {
  const conditions = manifest.exports[subpath];

  it("is exported with a source, a types and an import condition", () => {
    expect(conditions).toBeDefined();
    expect(Object.keys(conditions ?? {})).toEqual(["@orchestrator/source", "types", "import"]);
  });

  it("imports no Node built-in and no npm package (source)", () => {
    const source = conditions?.["@orchestrator/source"];
    if (!source) throw new Error(`${subpath} has no @orchestrator/source condition`);
    const graph = moduleGraph(resolve(packageRoot, source));
    // The walk really followed the graph (not just the index file).
    expect(graph.files.length).toBeGreaterThan(2);
    expect(graph.files.every((file) => file.startsWith("src/"))).toBe(true);
    expect(graph.external.filter(({ specifier }) => isNodeBuiltin(specifier))).toEqual([]);
    // Any npm package would need its own browser check first: none today.
    expect(graph.external).toEqual([]);
  });

  const built = conditions?.import ? resolve(packageRoot, conditions.import) : undefined;
  it.skipIf(!built || !existsSync(built))(
    "imports no Node built-in and no npm package (built; skipped until `npm run build`)",
    () => {
      if (!built) throw new Error(`${subpath} has no import condition`);
      const graph = moduleGraph(built);
      expect(graph.files.every((file) => file.startsWith("dist/"))).toBe(true);
      expect(graph.external).toEqual([]);
    },
  );
});

describe("the module graph walk", () => {
  it("sees Node built-ins where they are (the package root)", () => {
    const graph = moduleGraph(resolve(packageRoot, "src/index.ts"));
    expect(graph.external.some(({ specifier }) => isNodeBuiltin(specifier))).toBe(true);
  });
});
