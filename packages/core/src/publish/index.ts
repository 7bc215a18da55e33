/** Publishing local folders into a `TemplateStorage` (exported from `@orchestrator/core/cache`). */
export {
  executeLayerPublish,
  type LayerPublishPlan,
  type PublishLayerOptions,
  type PublishLayerResult,
  planLayerPublish,
  publishLayer,
} from "./publish-layer.js";
export {
  type PublishTemplateOptions,
  type PublishTemplateResult,
  publishTemplate,
  readTemplateFolder,
} from "./publish-template.js";
export {
  type LocalLayerFile,
  type ScanLayerFolderOptions,
  scanLayerFolder,
} from "./scan-layer-folder.js";
