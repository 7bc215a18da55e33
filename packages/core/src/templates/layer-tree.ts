/**
 * Reads the layers (bottom first) into one merged tree, checking every entry
 * on what is actually on disk (`lstat`, never following a link): no symlinks,
 * devices, FIFOs, sockets or unexpected hardlinks; names NFC-normalised, free
 * of control and bidi characters, and not colliding after case folding; caps
 * on entries, depth, name and path length. Whiteouts are applied as each
 * layer is read. Nothing is written here.
 */
import type { Stats } from "node:fs";
import { lstatSync, opendirSync, readdirSync } from "node:fs";
import { lstat } from "node:fs/promises";
import { TemplateInvalidError } from "../errors/orchestrator-error.js";
import { EventLoopSlicer } from "./concurrency.js";
import { caseFoldKey, entryNameProblem, nfc } from "./entry-name.js";
import type { FilePolicy } from "./file-policy.js";
import type { MergeLimits } from "./merge-limits.js";
import { MANIFEST_FILE } from "./template-manifest.js";
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX, whiteoutTarget } from "./whiteout.js";

/** A layer to merge: a display name (for manifests and errors) and its folder. */
export interface LayerSource {
  name: string;
  dir: string;
}

/** One layer's version of a file. */
export interface FileSource {
  layer: number;
  /** Absolute path on disk (the name as stored, which may not be NFC). */
  absolutePath: string;
  size: number;
  /** Full mode bits as found (special bits included; stripped when placed). */
  mode: number;
  mtimeMs: number;
  dev: number;
  ino: number;
}

export interface FileNode {
  kind: "file";
  /** Versions from the lowest to the top layer; only structured-merge files keep more than one. */
  sources: FileSource[];
}

export interface DirectoryNode {
  kind: "directory";
  /** Top-most layer that has this directory. */
  layer: number;
  mode: number;
  children: Map<string, TreeNode>;
  /** Case-folded key → the child's NFC name. */
  folds: Map<string, string>;
}

export type TreeNode = FileNode | DirectoryNode;

function newDirectory(layer: number, mode: number): DirectoryNode {
  return { kind: "directory", layer, mode, children: new Map(), folds: new Map() };
}

/** Root names the merge keeps for itself. */
const RESERVED_ROOT_NAMES = new Set([caseFoldKey(MANIFEST_FILE)]);

/**
 * Directories whose own size (bytes of entries) is above this are read as a
 * stream and cut off at the entry cap; smaller ones in one `readdir` call.
 */
const STREAMED_DIRECTORY_BYTES = 256 * 1024;

/** `dir/name` without `path.join`'s normalisation (both parts are already clean). */
function childOf(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function typeProblem(stat: Stats): string | undefined {
  if (stat.isSymbolicLink()) return "is a symbolic link";
  if (stat.isBlockDevice() || stat.isCharacterDevice()) return "is a device file";
  if (stat.isFIFO()) return "is a FIFO";
  if (stat.isSocket()) return "is a socket";
  if (!stat.isFile() && !stat.isDirectory()) return "is not a regular file or directory";
  return undefined;
}

export class LayerTreeBuilder {
  readonly root: DirectoryNode = newDirectory(0, 0o755);
  readonly #layers: readonly LayerSource[];
  readonly #policy: FilePolicy;
  readonly #limits: MergeLimits;
  readonly #signal: AbortSignal | undefined;
  readonly #allowSharedFiles: boolean;
  #entries = 0;
  /** dev:ino of every file of the layer being read, to catch hardlinks inside one layer. */
  #inodes = new Map<string, string>();

  constructor(
    layers: readonly LayerSource[],
    policy: FilePolicy,
    limits: MergeLimits,
    signal?: AbortSignal,
    allowSharedFiles = false,
  ) {
    this.#allowSharedFiles = allowSharedFiles;
    this.#layers = layers;
    this.#policy = policy;
    this.#limits = limits;
    this.#signal = signal;
    this.#slicer = new EventLoopSlicer(signal);
  }

  #fail(layer: number, path: string, reason: string): never {
    const layerName = this.#layers[layer]!.name;
    throw new TemplateInvalidError(`layer ${layerName}: ${path || "/"} ${reason}`, {
      details: { layer: layerName, path, reason },
    });
  }

  /** Reads every layer into `root`; throws `TEMPLATE_INVALID` naming the first bad path. */
  async build(): Promise<DirectoryNode> {
    for (let layer = 0; layer < this.#layers.length; layer += 1) {
      const source = this.#layers[layer]!;
      let stat: Stats;
      try {
        stat = await lstat(source.dir);
      } catch (cause) {
        throw new TemplateInvalidError(
          `layer ${source.name}: folder ${source.dir} cannot be read`,
          {
            cause,
            details: { layer: source.name, path: "", reason: "missing" },
          },
        );
      }
      if (!stat.isDirectory()) this.#fail(layer, "", "is not a directory");
      this.#inodes = new Map();
      this.root.layer = layer;
      await this.#readDirectory(layer, source.dir, "", this.root, 0, stat.size);
    }
    return this.root;
  }

  /** Metadata is read synchronously in slices (see `EventLoopSlicer`). */
  readonly #slicer: EventLoopSlicer;

  async #list(layer: number, dir: string, path: string, size: number): Promise<string[]> {
    if (size <= STREAMED_DIRECTORY_BYTES) {
      const names = readdirSync(dir);
      this.#entries += names.length;
      if (this.#entries > this.#limits.maxEntries) {
        this.#fail(layer, path, `takes the template over ${this.#limits.maxEntries} entries`);
      }
      return names;
    }
    // Streamed: a hostile directory with millions of entries fails at the cap
    // instead of being read into memory first.
    const names: string[] = [];
    const handle = opendirSync(dir, { bufferSize: 256 });
    try {
      for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) {
        this.#entries += 1;
        if (this.#entries > this.#limits.maxEntries) {
          this.#fail(layer, path, `takes the template over ${this.#limits.maxEntries} entries`);
        }
        names.push(entry.name);
        if (this.#slicer.due()) await this.#slicer.pause();
      }
    } finally {
      handle.closeSync();
    }
    return names;
  }

  async #lstatAll(names: readonly string[], dir: string): Promise<Stats[]> {
    const stats: Stats[] = [];
    for (const name of names) {
      stats.push(lstatSync(childOf(dir, name)));
      if (this.#slicer.due()) await this.#slicer.pause();
    }
    return stats;
  }

  async #readDirectory(
    layer: number,
    dir: string,
    path: string,
    node: DirectoryNode,
    depth: number,
    size: number,
  ): Promise<void> {
    this.#signal?.throwIfAborted();
    const names = (await this.#list(layer, dir, path, size)).sort();
    const childPath = (name: string) => (path ? `${path}/${name}` : name);
    for (const name of names) {
      const problem = entryNameProblem(name, this.#limits.maxNameBytes);
      if (problem) this.#fail(layer, childPath(name), problem);
    }
    const stats = await this.#lstatAll(names, dir);

    // Whiteouts first: they delete what lower layers put here, never this layer's own entries.
    const regular: number[] = [];
    names.forEach((name, index) => {
      const target = whiteoutTarget(name);
      if (target === undefined) {
        regular.push(index);
        return;
      }
      if (!stats[index]!.isFile())
        this.#fail(layer, childPath(name), "is a whiteout marker but not a file");
      if (typeof target !== "string") {
        node.children.clear();
        node.folds.clear();
        return;
      }
      if (target.startsWith(WHITEOUT_PREFIX) || target === "") {
        this.#fail(
          layer,
          childPath(name),
          `uses the reserved whiteout prefix (only ${OPAQUE_WHITEOUT} is defined)`,
        );
      }
      const deleted = target.normalize("NFC");
      const existing = node.folds.get(caseFoldKey(deleted));
      if (existing === undefined) return;
      if (existing !== deleted) {
        this.#fail(
          layer,
          childPath(name),
          `differs only in case or normalisation from ${childPath(existing)}`,
        );
      }
      node.children.delete(existing);
      node.folds.delete(caseFoldKey(deleted));
    });

    const seen = new Map<string, string>();
    for (const index of regular) {
      const rawName = names[index]!;
      const stat = stats[index]!;
      const name = nfc(rawName);
      const fold = caseFoldKey(name);
      const relative = childPath(name);
      const twin = seen.get(fold);
      if (twin !== undefined) {
        this.#fail(
          layer,
          relative,
          `collides with ${childPath(twin)} (same name after normalisation and case folding)`,
        );
      }
      seen.set(fold, name);
      const lower = node.folds.get(fold);
      if (lower !== undefined && lower !== name) {
        this.#fail(
          layer,
          relative,
          `collides with ${childPath(lower)} from a lower layer (differs only in case or normalisation)`,
        );
      }
      if (depth === 0 && RESERVED_ROOT_NAMES.has(fold))
        this.#fail(layer, relative, "is a name reserved by Orchestrator");
      if (Buffer.byteLength(relative) > this.#limits.maxPathBytes) {
        this.#fail(layer, relative, `has a path longer than ${this.#limits.maxPathBytes} bytes`);
      }
      const problem = typeProblem(stat);
      if (problem) this.#fail(layer, relative, problem);
      const absolute = childOf(dir, rawName);
      const existing = node.children.get(name);
      if (stat.isDirectory()) {
        if (depth + 1 > this.#limits.maxDepth) {
          this.#fail(layer, relative, `nests deeper than ${this.#limits.maxDepth} directories`);
        }
        let child: DirectoryNode;
        if (existing?.kind === "directory") {
          child = existing;
          child.layer = layer;
          child.mode = stat.mode & 0o777;
        } else {
          // A directory replaces a lower layer's file of the same name.
          child = newDirectory(layer, stat.mode & 0o777);
          node.children.set(name, child);
          node.folds.set(fold, name);
        }
        await this.#readDirectory(layer, absolute, relative, child, depth + 1, stat.size);
        continue;
      }
      const identity = `${stat.dev}:${stat.ino}`;
      const alias = this.#inodes.get(identity);
      if (alias !== undefined)
        this.#fail(layer, relative, `is a hard link to ${alias} of the same layer`);
      this.#inodes.set(identity, relative);
      // Link-policy files share their inode with instances by design; any other
      // file with several names may alias something outside the layer, unless
      // the caller vouches for the folder (a cache only it writes).
      if (stat.nlink > 1 && !this.#allowSharedFiles && !this.#policy.links(relative)) {
        this.#fail(layer, relative, `is a hard link (${stat.nlink} names)`);
      }
      const source: FileSource = {
        layer,
        absolutePath: absolute,
        size: stat.size,
        mode: stat.mode & 0o7777,
        mtimeMs: stat.mtimeMs,
        dev: stat.dev,
        ino: stat.ino,
      };
      if (existing?.kind === "file" && this.#policy.mergeFormat(relative) !== undefined) {
        existing.sources.push(source);
      } else {
        node.children.set(name, { kind: "file", sources: [source] });
        node.folds.set(fold, name);
      }
    }
  }
}
