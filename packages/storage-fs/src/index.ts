/** @orchestrator/storage-fs: not built yet; see the package README. */
export {};
