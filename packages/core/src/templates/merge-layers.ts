/**
 * `mergeLayers`: layers (bottom first) → an instance directory.
 *
 * A fresh instance is built in a staging directory beside the target and
 * renamed into place in one step, so a failure (a rejected layer, an unknown
 * variable in strict mode, a full disk) leaves nothing behind. Re-preparing an
 * existing instance touches only what changed: every check runs before the
 * first change, changed files are built in staging and renamed over the old
 * ones, and files the template does not own are never touched.
 */
import { createHash } from "node:crypto";
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  type Stats,
  writeSync,
} from "node:fs";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  unlink,
} from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import type { TemplateFilesDefinition } from "../domain/template.js";
import {
  ConflictError,
  TemplateInvalidError,
  ValidationError,
} from "../errors/orchestrator-error.js";
import { isBinaryContent } from "../variables/binary-content.js";
import type { ResolvedVariables } from "../variables/resolved-variables.js";
import { escapingForPath, type ValueEscaping } from "../variables/value-escaping.js";
import {
  type SubstitutionReport,
  type SubstitutionVariables,
  type UnknownVariable,
  unknownVariablesError,
  VariableSubstituter,
} from "../variables/variable-substituter.js";
import { EventLoopSlicer, forEachConcurrent } from "./concurrency.js";
import { FileCopier, type PlacementMethod } from "./file-copier.js";
import { FilePolicy, type StructuredFormat } from "./file-policy.js";
import {
  type DirectoryNode,
  type FileSource,
  type LayerSource,
  LayerTreeBuilder,
} from "./layer-tree.js";
import { DEFAULT_MERGE_LIMITS, type MergeLimits } from "./merge-limits.js";
import { mergeStructured } from "./structured-merge.js";
import {
  type FilePolicyName,
  MANIFEST_FILE,
  type ManifestEntry,
  readTemplateManifest,
  type TemplateManifest,
} from "./template-manifest.js";

export interface MergeLayersOptions {
  /** Layer folders, bottom first; a string is a folder named after its basename. */
  layers: readonly (string | LayerSource)[];
  /** The instance directory (created when absent, re-prepared when present). */
  target: string;
  /** Per-path policies: `substitute`, `link` and `merge` globs (as in `template.json`). */
  files?: TemplateFilesDefinition;
  /** The only values substitution sees (see `resolveVariables`). */
  variables?: SubstitutionVariables;
  /** Fail on unknown variables, listing `path:line:column` of each (default true). */
  strict?: boolean;
  limits?: Partial<MergeLimits>;
  /** Files placed at once (default 16). */
  concurrency?: number;
  /**
   * Accept layer files that have other names (hardlinks), e.g. because
   * instances of other templates `link` them from the same cache. Off by
   * default: a file with several names may alias something outside the
   * layer. Set it for layer folders only you write (the agent's template
   * cache). Two names for one file inside a layer are refused regardless.
   */
  allowSharedFiles?: boolean;
  signal?: AbortSignal;
}

export interface MergeStats {
  /** Files and directories the template has in the instance. */
  files: number;
  directories: number;
  /** Files placed by this call. */
  written: number;
  /** Template files left as they were (re-prepare: unchanged in layer and instance). */
  kept: number;
  /** Files the template used to have and no longer does, deleted from the instance. */
  removed: number;
  /** Bytes of the template's files in the instance. */
  bytes: number;
  /** Bytes placed by this call. */
  bytesWritten: number;
  /** How the written files landed. */
  methods: Record<PlacementMethod, number>;
}

export interface MergeSubstitutionSummary {
  /** Files substitution ran on (binary ones excluded). */
  files: number;
  replacements: number;
  /** Selected for substitution but binary, so copied untouched. */
  binary: string[];
  /** Unknown variables left untouched (non-strict mode), with positions. */
  unknown: UnknownVariable[];
  unknownCount: number;
}

export interface MergeResult {
  target: string;
  /** True when an existing instance directory was updated. */
  reprepared: boolean;
  manifest: TemplateManifest;
  stats: MergeStats;
  substitution: MergeSubstitutionSummary;
}

interface PlannedDirectory {
  path: string;
  layer: number;
  mode: number;
}

interface PlannedFile {
  path: string;
  /** Bottom first; more than one only for a structured merge. */
  sources: FileSource[];
  top: FileSource;
  mode: number;
  policy: FilePolicyName;
  format: StructuredFormat | undefined;
  substitute: boolean;
  /** How substituted values are escaped for this file's format. */
  escaping: ValueEscaping;
  link: boolean;
  fingerprint: string;
}

interface Placed {
  method: PlacementMethod;
  size: number;
  substituted: boolean;
  uses?: string[];
}

const STAGING_MARKER = ".orch-staging-";
/**
 * Substituted files up to this size are read and written synchronously (see
 * `substituteFileSync`; the event loop is yielded between files); bigger ones stream.
 */
const SYNC_SUBSTITUTION_BYTES = 256 * 1024;
const DOLLAR = 0x24;
/** Instance directories keep owner rwx so they can always be re-prepared and deleted. */
const OWNER_RWX = 0o700;

function digest(parts: readonly string[]): string {
  return createHash("sha256").update(parts.join("\u0001")).digest("hex").slice(0, 32);
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

function lstatSyncOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
    throw error;
  }
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw error;
  }
}

function conflict(path: string, reason: string): ConflictError {
  return new ConflictError(`instance directory: ${path} ${reason}`, { details: { path, reason } });
}

/** `writeNewFile`, synchronously (small files: one syscall each instead of a round trip). */
function writeNewFileSync(path: string, data: Uint8Array, mode: number): void {
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    for (let written = 0; written < data.byteLength; ) {
      written += writeSync(fd, data, written, data.byteLength - written);
    }
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

async function writeNewFile(path: string, data: Uint8Array, mode: number): Promise<void> {
  const handle = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    await handle.writeFile(data);
    await handle.chmod(mode);
  } finally {
    await handle.close();
  }
}

function normaliseLimits(limits: Partial<MergeLimits> = {}): MergeLimits {
  const merged = { ...DEFAULT_MERGE_LIMITS, ...limits };
  const issues = Object.entries(merged)
    .filter(([, value]) => !Number.isSafeInteger(value) || value <= 0)
    .map(([key]) => ({ path: `limits.${key}`, message: "must be a positive integer" }));
  if (issues.length > 0) throw new ValidationError(issues);
  return merged;
}

function normaliseLayers(layers: readonly (string | LayerSource)[]): LayerSource[] {
  if (!Array.isArray(layers) || layers.length === 0) {
    throw new ValidationError([{ path: "layers", message: "must list at least one layer folder" }]);
  }
  return layers.map((layer, index) => {
    if (typeof layer === "string" && layer.length > 0) {
      const dir = resolve(layer);
      return { name: basename(dir), dir };
    }
    if (
      typeof layer === "object" &&
      layer !== null &&
      typeof layer.name === "string" &&
      layer.name.length > 0 &&
      typeof layer.dir === "string" &&
      layer.dir.length > 0
    ) {
      return { name: layer.name, dir: resolve(layer.dir) };
    }
    throw new ValidationError([
      { path: `layers[${index}]`, message: "must be a folder path or { name, dir }" },
    ]);
  });
}

function isInside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

class LayerMerge {
  readonly #layers: LayerSource[];
  readonly #target: string;
  readonly #policy: FilePolicy;
  readonly #limits: MergeLimits;
  readonly #strict: boolean;
  readonly #concurrency: number;
  readonly #allowSharedFiles: boolean;
  readonly #signal: AbortSignal | undefined;
  readonly #substituter: VariableSubstituter;
  readonly #variables: ResolvedVariables;
  readonly #copier = new FileCopier();
  /** Yields to the event loop between synchronously substituted files. */
  readonly #fileSlicer: EventLoopSlicer;
  readonly #reports: SubstitutionReport[] = [];
  readonly #binary: string[] = [];
  readonly #methods: Record<PlacementMethod, number> = {
    copy: 0,
    reflink: 0,
    hardlink: 0,
    write: 0,
  };
  #bytesWritten = 0;
  #bytesTotal = 0;

  constructor(options: MergeLayersOptions) {
    this.#layers = normaliseLayers(options.layers);
    if (typeof options.target !== "string" || options.target.length === 0) {
      throw new ValidationError([{ path: "target", message: "must be a directory path" }]);
    }
    this.#target = resolve(options.target);
    if (dirname(this.#target) === this.#target) {
      throw new ValidationError([{ path: "target", message: "must not be a filesystem root" }]);
    }
    for (const layer of this.#layers) {
      if (isInside(layer.dir, this.#target) || isInside(this.#target, layer.dir)) {
        throw new ValidationError([
          { path: "target", message: `must not contain or be inside layer ${layer.name}` },
        ]);
      }
    }
    this.#policy = new FilePolicy(options.files ?? {});
    this.#limits = normaliseLimits(options.limits);
    this.#strict = options.strict ?? true;
    const concurrency = options.concurrency ?? 16;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ValidationError([{ path: "concurrency", message: "must be a positive integer" }]);
    }
    this.#concurrency = concurrency;
    this.#allowSharedFiles = options.allowSharedFiles === true;
    this.#signal = options.signal;
    this.#fileSlicer = new EventLoopSlicer(options.signal, 16);
    // Strictness is applied over all files at once (every unknown listed), not per file.
    this.#substituter = new VariableSubstituter(options.variables ?? {}, { strict: false });
    this.#variables = this.#substituter.variables;
  }

  async run(): Promise<MergeResult> {
    const tree = await new LayerTreeBuilder(
      this.#layers,
      this.#policy,
      this.#limits,
      this.#signal,
      this.#allowSharedFiles,
    ).build();
    const { directories, files } = this.#plan(tree);
    const existing = await lstatOrUndefined(this.#target);
    if (existing && !existing.isDirectory()) {
      throw conflict(".", "exists and is not a directory (a symbolic link is never followed)");
    }
    const parent = dirname(this.#target);
    await mkdir(parent, { recursive: true });
    await this.#removeStaleStaging(parent);
    const staging = await mkdtemp(join(parent, `.${basename(this.#target)}${STAGING_MARKER}`));
    try {
      const result = existing
        ? await this.#reprepare(staging, directories, files)
        : await this.#fresh(staging, directories, files);
      return result;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  /** Leftovers of a merge that crashed (same target, same parent). */
  async #removeStaleStaging(parent: string): Promise<void> {
    const prefix = `.${basename(this.#target)}${STAGING_MARKER}`;
    for (const name of await readdir(parent)) {
      if (name.startsWith(prefix)) await rm(join(parent, name), { recursive: true, force: true });
    }
  }

  #plan(root: DirectoryNode): { directories: PlannedDirectory[]; files: PlannedFile[] } {
    const directories: PlannedDirectory[] = [];
    const files: PlannedFile[] = [];
    let total = 0;
    const visit = (node: DirectoryNode, path: string) => {
      for (const name of [...node.children.keys()].sort()) {
        const child = node.children.get(name)!;
        const childPath = path ? `${path}/${name}` : name;
        if (child.kind === "directory") {
          directories.push({ path: childPath, layer: child.layer, mode: child.mode | OWNER_RWX });
          visit(child, childPath);
          continue;
        }
        const top = child.sources[child.sources.length - 1]!;
        const format = child.sources.length > 1 ? this.#policy.mergeFormat(childPath) : undefined;
        const substitute = this.#policy.substitutes(childPath);
        const link = !substitute && format === undefined && this.#policy.links(childPath);
        const policy: FilePolicyName =
          this.#policy.mergeFormat(childPath) !== undefined ? "merge" : link ? "link" : "copy";
        const mode = top.mode & 0o777;
        for (const source of child.sources) total += source.size;
        const identity = child.sources.map((source) =>
          [
            this.#layers[source.layer]!.name,
            source.size,
            source.mtimeMs,
            link ? `${source.dev}:${source.ino}` : "",
          ].join("\u0000"),
        );
        files.push({
          path: childPath,
          sources: child.sources,
          top,
          mode,
          policy,
          format,
          substitute,
          escaping: escapingForPath(childPath, this.#policy.mergeFormat(childPath)),
          link,
          fingerprint: digest([
            policy,
            format ?? "",
            substitute ? "s" : "",
            String(mode),
            ...identity,
          ]),
        });
      }
    };
    visit(root, "");
    if (total > this.#limits.maxTotalBytes) {
      throw new TemplateInvalidError(
        `the merged template would hold ${total} bytes, over the limit of ${this.#limits.maxTotalBytes}`,
        { details: { path: "", reason: "too large", bytes: total } },
      );
    }
    return { directories, files };
  }

  #variablesDigest(uses: readonly string[]): string {
    return digest(
      uses.map((name) => {
        const value = this.#variables.get(name);
        return value === undefined ? `${name}\u0002` : `${name}\u0000${value}`;
      }),
    );
  }

  #count(placed: Placed, path: string): void {
    this.#methods[placed.method] += 1;
    this.#bytesWritten += placed.size;
    this.#bytesTotal += placed.size;
    if (this.#bytesTotal > this.#limits.maxTotalBytes) {
      throw new TemplateInvalidError(
        `${path}: the instance exceeds ${this.#limits.maxTotalBytes} bytes`,
        { details: { path, reason: "too large" } },
      );
    }
  }

  /** Writes one planned file at `destination` (a new path: nothing is overwritten). */
  async #place(file: PlannedFile, destination: string): Promise<Placed> {
    if (file.format !== undefined) {
      const documents = await Promise.all(
        file.sources.map(async (source) => {
          const where = `${this.#layers[source.layer]!.name}:${file.path}`;
          if (source.size > this.#limits.maxStructuredFileBytes) {
            throw new TemplateInvalidError(
              `${where} is over ${this.#limits.maxStructuredFileBytes} bytes, too big to merge`,
              { details: { path: file.path, reason: "too large to merge" } },
            );
          }
          const text = await readFile(source.absolutePath, {
            encoding: "utf8",
            flag: constants.O_RDONLY | constants.O_NOFOLLOW,
          });
          return { source: where, text };
        }),
      );
      let data: Buffer = Buffer.from(mergeStructured(file.format, documents));
      let uses: string[] | undefined;
      if (file.substitute) {
        const { output, report } = this.#substituter.substituteBuffer(
          data,
          file.path,
          file.escaping,
        );
        this.#reports.push(report);
        data = output;
        uses = report.used;
      }
      await writeNewFile(destination, data, file.mode);
      return { method: "write", size: data.length, substituted: file.substitute, uses };
    }
    if (file.substitute) {
      const options = { source: file.path, mode: file.mode, escaping: file.escaping };
      let report: SubstitutionReport;
      if (file.top.size <= SYNC_SUBSTITUTION_BYTES) {
        const data = readFileSync(file.top.absolutePath, {
          flag: constants.O_RDONLY | constants.O_NOFOLLOW,
        });
        if (isBinaryContent(data) || data.indexOf(DOLLAR) === -1) {
          // Nothing to substitute (binary, or not a single `$`): a thread-pool
          // copy, in parallel, instead of a synchronous write.
          const binary = isBinaryContent(data);
          if (binary) this.#binary.push(file.path);
          else this.#reports.push(this.#substituter.substituteBuffer(data, file.path).report);
          await this.#copier.copy(file.top.absolutePath, destination, file.mode, file.top.mode);
          return binary
            ? { method: "copy", size: data.length, substituted: false }
            : { method: "copy", size: data.length, substituted: true, uses: [] };
        }
        const substituted = this.#substituter.substituteBuffer(data, file.path, file.escaping);
        report = substituted.report;
        writeNewFileSync(destination, substituted.output, file.mode);
        if (this.#fileSlicer.due()) await this.#fileSlicer.pause();
      } else {
        report = await this.#substituter.substituteFile(
          file.top.absolutePath,
          destination,
          options,
        );
      }
      if (report.binary) {
        this.#binary.push(file.path);
        return { method: "copy", size: report.bytesWritten, substituted: false };
      }
      this.#reports.push(report);
      return { method: "write", size: report.bytesWritten, substituted: true, uses: report.used };
    }
    // Linking was tried (synchronously) before: what reaches here is copied.
    const method = await this.#copier.copy(
      file.top.absolutePath,
      destination,
      file.mode,
      file.top.mode,
    );
    return { method, size: file.top.size, substituted: false };
  }

  /**
   * Places `files` (at `destinationOf(file, index)`). Links first (metadata
   * operations, synchronous in event-loop slices); then copies run in the
   * thread pool while the main thread substitutes and merges files, so the
   * two overlap. In strict mode every unknown variable is listed once all
   * substitutions are done; the first failure stops both streams of work.
   */
  async #placeAll(
    files: readonly PlannedFile[],
    destinationOf: (file: PlannedFile, index: number) => string,
  ): Promise<Map<PlannedFile, Placed>> {
    const placed = new Map<PlannedFile, Placed>();
    const indexed = files.map((file, index) => ({ file, index }));
    const written = indexed.filter(({ file }) => file.substitute || file.format !== undefined);
    const copied = indexed.filter(({ file }) => !(file.substitute || file.format !== undefined));

    const slicer = new EventLoopSlicer(this.#signal);
    const toCopy: typeof copied = [];
    for (const item of copied) {
      const { file, index } = item;
      const method = file.link
        ? this.#copier.linkSync(file.top.absolutePath, destinationOf(file, index), file.top.mode)
        : undefined;
      if (method === undefined) {
        toCopy.push(item);
        continue;
      }
      const result: Placed = { method, size: file.top.size, substituted: false };
      this.#count(result, file.path);
      placed.set(file, result);
      if (slicer.due()) await slicer.pause();
    }

    const stop = new AbortController();
    const signal = this.#signal ? AbortSignal.any([this.#signal, stop.signal]) : stop.signal;
    const work = async ({ file, index }: { file: PlannedFile; index: number }) => {
      const result = await this.#place(file, destinationOf(file, index));
      this.#count(result, file.path);
      placed.set(file, result);
    };
    const stopOnFailure = (error: unknown): never => {
      stop.abort(error);
      throw error;
    };
    // Copies are queued first so the thread pool is busy while substitution runs.
    const copying = forEachConcurrent(toCopy, this.#concurrency, work, signal).catch(stopOnFailure);
    const writing = forEachConcurrent(written, this.#concurrency, work, signal)
      .then(() => {
        // Completion order is arbitrary: report in path order.
        this.#reports.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
        const unknown = this.#reports.filter((report) => report.unknownCount > 0);
        if (this.#strict && unknown.length > 0) throw unknownVariablesError(unknown);
      })
      .catch(stopOnFailure);
    const outcomes = await Promise.allSettled([writing, copying]);
    for (const outcome of outcomes) if (outcome.status === "rejected") throw outcome.reason;
    return placed;
  }

  #fileEntry(file: PlannedFile, placed: Placed, inode?: number): ManifestEntry {
    const entry: ManifestEntry = {
      path: file.path,
      kind: "file",
      layer: this.#layers[file.top.layer]!.name,
      mode: file.mode,
      size: placed.size,
      policy: file.policy,
      method: placed.method,
      source: file.fingerprint,
    };
    if (placed.substituted) {
      entry.substituted = true;
      entry.uses = placed.uses ?? [];
      entry.variables = this.#variablesDigest(entry.uses);
    }
    if (file.format !== undefined) {
      entry.mergedFrom = file.sources.map((source) => this.#layers[source.layer]!.name);
    }
    if (placed.method === "hardlink") entry.inode = inode ?? file.top.ino;
    return entry;
  }

  #directoryEntry(directory: PlannedDirectory): ManifestEntry {
    return {
      path: directory.path,
      kind: "directory",
      layer: this.#layers[directory.layer]!.name,
      mode: directory.mode,
      size: 0,
    };
  }

  #manifest(entries: ManifestEntry[]): TemplateManifest {
    entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { format: 1, layers: this.#layers.map((layer) => layer.name), entries };
  }

  #result(
    manifest: TemplateManifest,
    reprepared: boolean,
    counts: { written: number; kept: number; removed: number },
  ): MergeResult {
    const files = manifest.entries.filter((entry) => entry.kind === "file");
    const substituted = this.#reports;
    return {
      target: this.#target,
      reprepared,
      manifest,
      stats: {
        files: files.length,
        directories: manifest.entries.length - files.length,
        ...counts,
        bytes: files.reduce((sum, entry) => sum + entry.size, 0),
        bytesWritten: this.#bytesWritten,
        methods: { ...this.#methods },
      },
      substitution: {
        files: substituted.length,
        replacements: substituted.reduce((sum, report) => sum + report.replacements, 0),
        binary: [...this.#binary].sort(),
        unknown: substituted.flatMap((report) => report.unknown),
        unknownCount: substituted.reduce((sum, report) => sum + report.unknownCount, 0),
      },
    };
  }

  async #writeManifest(path: string, manifest: TemplateManifest): Promise<void> {
    await writeNewFile(path, Buffer.from(`${JSON.stringify(manifest)}\n`), 0o644);
  }

  async #fresh(
    staging: string,
    directories: readonly PlannedDirectory[],
    files: readonly PlannedFile[],
  ): Promise<MergeResult> {
    const slicer = new EventLoopSlicer(this.#signal);
    for (const directory of directories) {
      mkdirSync(join(staging, directory.path), { mode: directory.mode });
      if (slicer.due()) await slicer.pause();
    }
    const placed = await this.#placeAll(files, (file) => join(staging, file.path));
    // Exact modes (mkdir's are filtered by the umask).
    for (const directory of directories) {
      chmodSync(join(staging, directory.path), directory.mode);
      if (slicer.due()) await slicer.pause();
    }
    const entries = [
      ...directories.map((directory) => this.#directoryEntry(directory)),
      ...files.map((file) => this.#fileEntry(file, placed.get(file)!)),
    ];
    const manifest = this.#manifest(entries);
    // Written last: its change time bounds every file of this merge (see re-prepare).
    await this.#writeManifest(join(staging, MANIFEST_FILE), manifest);
    await chmod(staging, 0o755);
    this.#signal?.throwIfAborted();
    // The swap: the instance appears complete or not at all.
    await rename(staging, this.#target);
    return this.#result(manifest, false, { written: files.length, kept: 0, removed: 0 });
  }

  /** True when everything under `path` in the target is a file or directory the old manifest owns. */
  async #onlyOwned(path: string, owned: ReadonlyMap<string, ManifestEntry>): Promise<boolean> {
    let budget = this.#limits.maxEntries;
    const walk = async (relative: string): Promise<boolean> => {
      for (const name of await readdir(join(this.#target, relative))) {
        budget -= 1;
        if (budget < 0) return false;
        const childPath = `${relative}/${name}`;
        const entry = owned.get(childPath);
        const stat = await lstat(join(this.#target, childPath));
        if (stat.isDirectory()) {
          if (entry?.kind !== "directory" || !(await walk(childPath))) return false;
        } else if (!stat.isFile() || entry?.kind !== "file") {
          return false;
        }
      }
      return true;
    };
    return walk(path);
  }

  async #reprepare(
    staging: string,
    directories: readonly PlannedDirectory[],
    files: readonly PlannedFile[],
  ): Promise<MergeResult> {
    const target = this.#target;
    const previous = await readTemplateManifest(target);
    const owned = new Map((previous?.manifest.entries ?? []).map((entry) => [entry.path, entry]));
    const writtenBefore = previous?.ctimeMs ?? Number.NEGATIVE_INFINITY;
    const manifestStat = await lstatOrUndefined(join(target, MANIFEST_FILE));
    if (manifestStat && !manifestStat.isFile()) {
      throw conflict(MANIFEST_FILE, "is not a regular file (reserved for the manifest)");
    }

    // 1. Inspect the instance; everything that could fail is found before the first change.
    type DirectoryAction = "exists" | "create" | "replace-file";
    const directoryActions = new Map<string, DirectoryAction>();
    const currentModes = new Map<string, number>();
    const parentExists = (path: string) => {
      const parent = parentOf(path);
      return parent === "" || directoryActions.get(parent) === "exists";
    };
    const slicer = new EventLoopSlicer(this.#signal);
    for (const directory of directories) {
      if (!parentExists(directory.path)) {
        directoryActions.set(directory.path, "create");
        continue;
      }
      if (slicer.due()) await slicer.pause();
      const stat = lstatSyncOrUndefined(join(target, directory.path));
      if (!stat) directoryActions.set(directory.path, "create");
      else if (stat.isDirectory()) {
        directoryActions.set(directory.path, "exists");
        currentModes.set(directory.path, stat.mode & 0o777);
      } else if (stat.isFile()) directoryActions.set(directory.path, "replace-file");
      else
        throw conflict(
          directory.path,
          "is a symbolic link or special file where the template has a directory",
        );
    }
    const toWrite: { file: PlannedFile; replace: "none" | "file" | "directory" }[] = [];
    const kept: ManifestEntry[] = [];
    for (const file of files) {
      if (!parentExists(file.path)) {
        toWrite.push({ file, replace: "none" });
        continue;
      }
      if (slicer.due()) await slicer.pause();
      const stat = lstatSyncOrUndefined(join(target, file.path));
      if (!stat) {
        toWrite.push({ file, replace: "none" });
      } else if (stat.isFile()) {
        const old = owned.get(file.path);
        if (old?.kind === "file" && this.#unchanged(file, old, stat, writtenBefore)) kept.push(old);
        else toWrite.push({ file, replace: "file" });
      } else if (stat.isDirectory()) {
        if (!(await this.#onlyOwned(file.path, owned))) {
          throw conflict(
            file.path,
            "is a directory holding files the template does not own, where the template has a file",
          );
        }
        toWrite.push({ file, replace: "directory" });
      } else {
        throw conflict(
          file.path,
          "is a symbolic link or special file where the template has a file (never written through)",
        );
      }
    }
    toWrite.sort((a, b) => (a.file.path < b.file.path ? -1 : 1));

    // 2. Build every changed file in staging (flat names), substituted ones first.
    const placed = await this.#placeAll(
      toWrite.map((item) => item.file),
      (_file, index) => join(staging, String(index)),
    );
    const inodes = new Map<PlannedFile, number>();
    await forEachConcurrent(toWrite, this.#concurrency, async ({ file }, index) => {
      if (placed.get(file)?.method === "hardlink") {
        inodes.set(file, (await lstat(join(staging, String(index)))).ino);
      }
    });

    // 3. Apply: directories, then renames over the old files, then deletions.
    this.#signal?.throwIfAborted();
    for (const directory of directories) {
      const action = directoryActions.get(directory.path);
      if (action === "exists") continue;
      const path = join(target, directory.path);
      if (action === "replace-file") await unlink(path);
      await mkdir(path, { mode: directory.mode });
    }
    await forEachConcurrent(toWrite, this.#concurrency, async ({ file, replace }, index) => {
      const destination = join(target, file.path);
      if (replace === "directory") await rm(destination, { recursive: true });
      await rename(join(staging, String(index)), destination);
    });
    const planned = new Set([...directories.map((d) => d.path), ...files.map((f) => f.path)]);
    const removed = await this.#removeDropped(owned, planned);
    for (const directory of directories) {
      if (currentModes.get(directory.path) !== directory.mode) {
        chmodSync(join(target, directory.path), directory.mode);
        if (slicer.due()) await slicer.pause();
      }
    }

    const entries = [
      ...directories.map((directory) => this.#directoryEntry(directory)),
      ...kept,
      ...toWrite.map(({ file }) => this.#fileEntry(file, placed.get(file)!, inodes.get(file))),
    ];
    for (const entry of kept) this.#bytesTotal += entry.size;
    const manifest = this.#manifest(entries);
    const manifestStaging = join(staging, MANIFEST_FILE);
    await this.#writeManifest(manifestStaging, manifest);
    await rename(manifestStaging, join(target, MANIFEST_FILE));
    return this.#result(manifest, true, { written: toWrite.length, kept: kept.length, removed });
  }

  /** Is the instance's copy exactly what the last merge left, and its source the same? */
  #unchanged(file: PlannedFile, old: ManifestEntry, stat: Stats, writtenBefore: number): boolean {
    if (old.source !== file.fingerprint) return false;
    if (old.substituted && old.variables !== this.#variablesDigest(old.uses ?? [])) return false;
    if (old.method === "hardlink") return old.inode === stat.ino;
    // Any write or chmod in the instance since the merge moves the change time past the manifest's.
    return stat.size === old.size && stat.ctimeMs <= writtenBefore;
  }

  /**
   * Deletes what the previous template owned and the new one does not have.
   * Only regular files are unlinked and only empty directories removed, never
   * through a symlink: the paths come from a file the instance could have edited.
   */
  async #removeDropped(
    owned: ReadonlyMap<string, ManifestEntry>,
    planned: ReadonlySet<string>,
  ): Promise<number> {
    const safeDirectories = new Map<string, boolean>([["", true]]);
    const safeParent = async (path: string): Promise<boolean> => {
      const parent = parentOf(path);
      const known = safeDirectories.get(parent);
      if (known !== undefined) return known;
      const stat = await lstatOrUndefined(join(this.#target, parent));
      const safe = (await safeParent(parent)) && stat !== undefined && stat.isDirectory();
      safeDirectories.set(parent, safe);
      return safe;
    };
    let removed = 0;
    const dropped = [...owned.values()].filter((entry) => !planned.has(entry.path));
    for (const entry of dropped.filter((e) => e.kind === "file")) {
      if (!(await safeParent(entry.path))) continue;
      const path = join(this.#target, entry.path);
      const stat = await lstatOrUndefined(path);
      if (stat?.isFile()) {
        await unlink(path);
        removed += 1;
      }
    }
    const directories = dropped
      .filter((entry) => entry.kind === "directory")
      .sort((a, b) => b.path.length - a.path.length);
    for (const entry of directories) {
      if (!(await safeParent(entry.path))) continue;
      const path = join(this.#target, entry.path);
      const stat = await lstatOrUndefined(path);
      if (!stat?.isDirectory()) continue;
      // Kept when it still holds files the template does not own.
      await rmdir(path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
      });
    }
    return removed;
  }
}

/**
 * Merges `layers` (bottom first) into `target` and returns the manifest.
 * Throws `TEMPLATE_INVALID` for a rejected layer or, in strict mode, unknown
 * variables; `CONFLICT` when the instance directory has a symlink or foreign
 * data where the template needs to write; `VALIDATION_FAILED` for bad options.
 * On any failure the target is left as it was.
 */
export async function mergeLayers(options: MergeLayersOptions): Promise<MergeResult> {
  return new LayerMerge(options).run();
}
