/** Caps that bound what a layer can make the merge do (all configurable). */
export interface MergeLimits {
  /** Directory entries read across all layers (files, directories, whiteouts). */
  maxEntries: number;
  /** Nesting depth of directories below the layer root. */
  maxDepth: number;
  /** Bytes of one name (UTF-8, after NFC normalisation). */
  maxNameBytes: number;
  /** Bytes of one relative path (UTF-8). */
  maxPathBytes: number;
  /** Bytes of the merged instance (every file, counted on what is written). */
  maxTotalBytes: number;
  /** Bytes of one file under structured merge (parsed in memory). */
  maxStructuredFileBytes: number;
}

export const DEFAULT_MERGE_LIMITS: Readonly<MergeLimits> = Object.freeze({
  maxEntries: 200_000,
  maxDepth: 32,
  maxNameBytes: 255,
  maxPathBytes: 4096,
  maxTotalBytes: 64 * 1024 ** 3,
  maxStructuredFileBytes: 16 * 1024 ** 2,
});
