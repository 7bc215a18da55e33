/** `@orchestrator/storage-s3`: `TemplateStorage` over S3 and S3-compatible servers. */
export { classifyS3Error } from "./classify-s3-error.js";
export { S3TemplateStorage } from "./s3-template-storage.js";
export type { S3TemplateStorageConfig } from "./s3-template-storage-config.js";
