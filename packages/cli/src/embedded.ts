/**
 * The long-running commands: `start` (Brain + local agent + demo template in
 * one process), `brain`, `agent`. Each stops cleanly on SIGINT/SIGTERM; game
 * servers keep running and are re-attached on the next start.
 */
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type Brain,
  buildBrain,
  loadBrainConfig,
  type NodeService,
  type TemplateService,
  TOKENS,
} from "@orchestrator/brain-server";
import { guardPlugin, type Repositories, type TemplateStorage } from "@orchestrator/core";
import { publishTemplate } from "@orchestrator/core/cache";
import { type Agent, createAgent, loadAgentConfig } from "@orchestrator/node-agent";
import { FolderTemplateStorage } from "@orchestrator/storage-fs";
import { panelDirectory } from "@orchestrator/webpanel";
import type { Io } from "./output.js";

/** The demo template shipped with the CLI. */
export const DEMO_TEMPLATE_DIR = fileURLToPath(new URL("../demo/hello-http", import.meta.url));

/** Resolves when the process is asked to stop. */
function untilSignal(): Promise<string> {
  return new Promise((resolveSignal) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const)
      process.once(signal, () => resolveSignal(signal));
  });
}

async function startBrain(io: Io): Promise<{ brain: Brain; url: string }> {
  // The panel is served when it has been built (ORCH_PANEL_DIR overrides where from).
  const panelDir = io.env.ORCH_PANEL_DIR ? null : panelDirectory();
  const config = loadBrainConfig({ env: io.env, overrides: panelDir ? { panelDir } : {} });
  if (config.databaseUrl.startsWith("sqlite:") && !config.databaseUrl.includes(":memory:")) {
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  }
  const brain = await buildBrain(config, { logger: { level: io.env.ORCH_LOG_LEVEL ?? "warn" } });
  const admin = await brain.ensureAdmin();
  brain.startLoops();
  const address = await brain.listen();
  const url = address.replace("[::1]", "127.0.0.1").replace("0.0.0.0", "127.0.0.1");
  if (admin?.password) {
    io.out(`First start: created the user 'admin' with the password ${admin.password}`);
    io.out(
      "(shown once; change it in the panel, or set ORCH_ADMIN_PASSWORD before the first start)",
    );
  }
  return { brain, url };
}

/** `orchestrator start`: everything in one process, with the embedded defaults. */
export async function startEmbedded(io: Io): Promise<number> {
  const dataDir = resolve(io.env.ORCH_DATA_DIR ?? "./.orchestrator");
  const env: NodeJS.ProcessEnv = { ...io.env, ORCH_DATA_DIR: dataDir };
  const { brain, url } = await startBrain({ ...io, env });
  const templatesDir = join(dataDir, "templates");
  const agentDir = join(dataDir, "agent");
  let agent: Agent | null = null;
  try {
    await seedDemo(brain, templatesDir, dataDir, io);
    const joinToken = existsSync(join(agentDir, "credential.json"))
      ? null
      : await localJoinToken(brain);
    agent = createAgent(
      loadAgentConfig({
        ...env,
        ORCH_BRAIN_URL: url,
        ORCH_DATA_DIR: agentDir,
        ORCH_STORAGE: "folder",
        ORCH_STORAGE_DIR: templatesDir,
        ORCH_RUNTIME: env.ORCH_RUNTIME ?? "process",
        ORCH_NODE_NAME: env.ORCH_NODE_NAME ?? "local",
        ...(joinToken ? { ORCH_JOIN_TOKEN: joinToken } : {}),
      }),
      { logger: quietLogger(io) },
    );
    await agent.start();
  } catch (error) {
    await agent?.stop();
    await brain.close();
    throw error;
  }
  io.out(`Orchestrator is running at ${url}  (API ${url}/api/v1, docs ${url}/api/docs)`);
  io.out(
    `Data in ${dataDir}. Ctrl-C stops Orchestrator; game servers keep running and are re-attached on the next start.`,
  );
  const signal = await untilSignal();
  io.out(`${signal}: stopping`);
  await agent.stop();
  await brain.close();
  return 0;
}

export async function startBrainOnly(io: Io): Promise<number> {
  const { brain, url } = await startBrain(io);
  io.out(`Brain running at ${url}`);
  await untilSignal();
  await brain.close();
  return 0;
}

export async function startAgentOnly(io: Io): Promise<number> {
  const agent = createAgent(loadAgentConfig(io.env), { logger: quietLogger(io) });
  await agent.start();
  io.out(`Agent running as node ${agent.nodeId}`);
  await untilSignal();
  await agent.stop();
  return 0;
}

/** A join token for the embedded agent (created directly, it never leaves the process). */
async function localJoinToken(brain: Brain): Promise<string> {
  const nodes = brain.container.resolve<NodeService>(TOKENS.NodeService);
  const { secret } = await nodes.createJoinToken({ kind: "system", id: "embedded" }, 10, null);
  return secret;
}

/** On first start: the demo template goes into the local template folder and is registered. */
async function seedDemo(
  brain: Brain,
  templatesDir: string,
  dataDir: string,
  io: Io,
): Promise<void> {
  const marker = join(dataDir, ".demo-seeded");
  if (existsSync(marker)) return;
  await mkdir(templatesDir, { recursive: true });
  const storage: TemplateStorage = guardPlugin(new FolderTemplateStorage({ root: templatesDir }));
  try {
    const published = await publishTemplate(storage, DEMO_TEMPLATE_DIR);
    const repositories = brain.container.resolve<Repositories>(TOKENS.Repositories);
    const templates = brain.container.resolve<TemplateService>(TOKENS.TemplateService);
    if (!(await repositories.templates.get(published.name))) {
      await templates.register(
        { definition: published.definition },
        { kind: "system", id: "embedded" },
        null,
      );
      io.out(`Seeded the demo template '${published.name}'.`);
    }
  } finally {
    await storage.destroy?.();
  }
  await writeFile(marker, `${new Date().toISOString()}\n`);
}

function quietLogger(io: Io) {
  return {
    info: () => undefined,
    warn: (details: object, message: string) =>
      io.err(`agent: ${message} ${JSON.stringify(details)}`),
    error: (details: object, message: string) =>
      io.err(`agent: ${message} ${JSON.stringify(details)}`),
  };
}
