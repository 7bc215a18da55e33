/**
 * `@orchestrator/core/templates`: layer merging. Layers (folders, bottom
 * first) merge into an instance directory with whiteouts, structured merge of
 * `.properties`/JSON/YAML, copy or link policies, variable substitution,
 * safety checks on what is on disk, staging + atomic swap, and a manifest.
 */
export * from "./entry-name.js";
export type { PlacementMethod } from "./file-copier.js";
export * from "./file-policy.js";
export type { FileSource, LayerSource } from "./layer-tree.js";
export * from "./merge-layers.js";
export * from "./merge-limits.js";
export * from "./structured-merge.js";
export * from "./template-manifest.js";
export * from "./whiteout.js";
