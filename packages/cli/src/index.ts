/** `@orchestrator/cli`: the `orchestrator` command (`runCli` for embedding and tests). */
export { runCli } from "./cli.js";
export { DEMO_TEMPLATE_DIR } from "./embedded.js";
export { EXIT } from "./exit-codes.js";
export type { Io } from "./output.js";
