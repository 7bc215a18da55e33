/**
 * `@orchestrator/runtime-docker`: the `Runtime` that runs game servers as
 * Docker containers, with the agent's local policy enforced on each.
 */
export { classifyDockerError } from "./classify-docker-error.js";
export { DockerFrameDecoder, type DockerStreamName } from "./docker-frame-decoder.js";
export { DOCKER_LABELS, DockerRuntime } from "./docker-runtime.js";
export { type DockerRuntimeConfig, REFUSED_CAPABILITIES } from "./docker-runtime-config.js";
