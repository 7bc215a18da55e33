/**
 * `@orchestrator/runtime-process`: the `Runtime` that runs game servers as
 * detached child processes (the embedded default; no Docker needed).
 */
export { CgroupLimits, findCgroup2Mount } from "./cgroup-limits.js";
export { ProcessRuntime } from "./process-runtime.js";
export { DEFAULT_SERVER_PATH, type ProcessRuntimeConfig } from "./process-runtime-config.js";
