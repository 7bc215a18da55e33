/** @orchestrator/storage-s3: not built yet; see the package README. */
export {};
