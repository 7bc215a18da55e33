/**
 * `@orchestrator/core/cache`: the verified local cache of template layers over
 * any `TemplateStorage`, and publishing folders into a storage. Node only
 * (file system); the main entry point stays browser-safe.
 */
export * from "../publish/index.js";
export { backoffDelay, mapLimit } from "./concurrency.js";
export { TemplateCache } from "./template-cache.js";
export type {
  CachedLayer,
  CachedLayerStatus,
  LayerSyncReport,
  TemplateCacheOptions,
  TemplateCacheWarning,
} from "./template-cache-options.js";
