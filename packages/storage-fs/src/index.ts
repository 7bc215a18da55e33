/** `@orchestrator/storage-fs`: `TemplateStorage` over a local folder (the embedded default). */
export { classifyFsError, FolderTemplateStorage } from "./folder-template-storage.js";
export type { FolderTemplateStorageConfig } from "./folder-template-storage-config.js";
