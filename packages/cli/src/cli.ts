/**
 * The `orchestrator` command. `runCli(argv, io)` returns the exit code (see
 * `EXIT`); every subcommand has `--help`; `--json` prints machine-readable output.
 */
import { parseArgs } from "node:util";
import { loadBrainConfig } from "@orchestrator/brain-server";
import { OrchestratorError, ValidationError } from "@orchestrator/core";
import { migrateToLatest, migrationStatus, openDatabase } from "@orchestrator/repository-sql";
import { startAgentOnly, startBrainOnly, startEmbedded } from "./embedded.js";
import { EXIT, exitCodeOf } from "./exit-codes.js";
import type { Io } from "./output.js";
import {
  type Flags,
  instanceCommand,
  joinToken,
  login,
  templateList,
  templatePush,
} from "./remote.js";

const HELP: Record<string, string> = {
  main: `orchestrator — run game servers across a fleet of machines

Usage: orchestrator <command> [options]

Commands:
  start                      Brain + local agent + demo template in one process (embedded default)
  brain                      the Brain only (SQLite, or ORCH_DATABASE_URL=mysql://...)
  agent                      a Node Agent only (ORCH_BRAIN_URL, ORCH_JOIN_TOKEN, ...)
  template push <dir>        publish a template folder to storage and register it
  template list              templates known to the Brain
  instance <action> ...      create | list | start | stop | restart | kill | destroy | logs
  login                      print a new API token (ORCH_USERNAME, ORCH_PASSWORD or stdin)
  join-token                 create a one-time join token for a new node
  migrate [--status]         apply database migrations (or show where the database stands)

Options: --json (machine-readable output), --help (on every command).
Remote commands use ORCH_URL (default http://127.0.0.1:8080) and ORCH_TOKEN.
Exit codes: 0 ok, 1 failure, 2 usage or invalid input, 3 not found, 4 denied, 5 conflict.`,
  start: `orchestrator start

Runs everything in one process: the Brain on SQLite in ORCH_DATA_DIR (default ./.orchestrator),
a local agent (process runtime, folder storage in <data dir>/templates, joined automatically),
and the demo template 'hello-http' (seeded on first start). Prints the URL and, on first start,
the admin password (or set ORCH_ADMIN_PASSWORD). Ctrl-C stops; game servers keep running and are
re-attached by the next start. Brain settings: ORCH_PORT, ORCH_HOST, ... (see the brain-server README).`,
  brain: `orchestrator brain

Runs the Brain only. Settings from ORCH_* variables: ORCH_PORT, ORCH_HOST, ORCH_DATABASE_URL
(sqlite:<path> or mysql://user:password@host:port/database), ORCH_ADMIN_PASSWORD, ...`,
  agent: `orchestrator agent

Runs a Node Agent. Settings: ORCH_BRAIN_URL, ORCH_JOIN_TOKEN (first start), ORCH_DATA_DIR,
ORCH_RUNTIME=process|docker, ORCH_ALLOWED_IMAGES, ORCH_STORAGE=folder|s3, ORCH_STORAGE_DIR,
ORCH_S3_BUCKET/REGION/PREFIX/ENDPOINT/FORCE_PATH_STYLE/ACCESS_KEY_ID/SECRET_ACCESS_KEY,
ORCH_NODE_LABELS, ORCH_PORT_RANGE, ORCH_CAPACITY_* (see the node-agent README).`,
  template: `orchestrator template push <dir> [--storage folder|s3] [--storage-dir DIR] [--dry-run] [--no-register]
orchestrator template list

push: <dir>/template.json plus <dir>/layers/<layer>/ folders. Uploads only changed files, deletes
removed ones, refuses symlinks, devices and unsafe names, writes template.json, then registers the
version with the Brain when ORCH_TOKEN is set.`,
  instance: `orchestrator instance list
orchestrator instance create <template> <name> [--var KEY=VALUE ...]
orchestrator instance start|stop|restart|kill|destroy <id>
orchestrator instance logs <id>          (follows until Ctrl-C)`,
  login: `orchestrator login [--username NAME] [--name TOKEN_NAME]

Logs in (ORCH_USERNAME, default admin; the password from ORCH_PASSWORD or the first line of
stdin) and prints a new API token:  export ORCH_TOKEN=$(orchestrator login)`,
  "join-token": `orchestrator join-token [--expires-in MINUTES]

Creates a one-time join token (admin) and prints the command to run on the new node.`,
  migrate: `orchestrator migrate [--status]

Applies pending migrations to ORCH_DATABASE_URL (default: the embedded SQLite database), or with
--status shows the current and pending migrations.`,
};

export async function runCli(argv: readonly string[], io: Io): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.err(`orchestrator: ${(error as Error).message}\n\n${HELP.main}`);
    return EXIT.usage;
  }
  const { positionals, values } = parsed;
  const flags: Flags = { json: values.json === true, values: values as unknown as Flags["values"] };
  const [command, ...rest] = positionals;
  if (!command || command === "help") {
    io.out(HELP.main!);
    return command || values.help ? EXIT.ok : EXIT.usage;
  }
  if (values.help) {
    io.out(HELP[command] ?? HELP.main!);
    return HELP[command] ? EXIT.ok : EXIT.usage;
  }
  try {
    switch (command) {
      case "start":
        return await startEmbedded(io);
      case "brain":
        return await startBrainOnly(io);
      case "agent":
        return await startAgentOnly(io);
      case "template": {
        const [action, dir] = rest;
        if (action === "push" && dir) return await templatePush(io, flags, dir);
        if (action === "list") return await templateList(io, flags);
        io.err(HELP.template!);
        return EXIT.usage;
      }
      case "instance": {
        const [action, ...args] = rest;
        if (!action) {
          io.err(HELP.instance!);
          return EXIT.usage;
        }
        return await instanceCommand(io, flags, action, args);
      }
      case "join-token":
        return await joinToken(io, flags);
      case "login":
        return await login(io, flags, readStdin);
      case "migrate":
        return await migrate(io, flags);
      default:
        io.err(`orchestrator: unknown command '${command}'\n\n${HELP.main}`);
        return EXIT.usage;
    }
  } catch (error) {
    report(io, flags, error);
    return exitCodeOf(error);
  }
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      help: { type: "boolean", short: "h" },
      json: { type: "boolean" },
      status: { type: "boolean" },
      storage: { type: "string" },
      "storage-dir": { type: "string" },
      "dry-run": { type: "boolean" },
      register: { type: "boolean", default: true },
      "no-register": { type: "boolean" },
      var: { type: "string", multiple: true },
      "expires-in": { type: "string" },
      username: { type: "string" },
      name: { type: "string" },
    },
  });
}

function report(io: Io, flags: Flags, error: unknown): void {
  if (flags.json) {
    const body = OrchestratorError.isInstance(error)
      ? error.toJSON()
      : { code: "INTERNAL", message: (error as Error)?.message ?? String(error), details: {} };
    io.err(JSON.stringify({ error: body }));
    return;
  }
  if (error instanceof ValidationError) {
    io.err(
      `orchestrator: ${error.issues.length === 1 ? "invalid input" : `${error.issues.length} problems`}:`,
    );
    for (const issue of error.issues) io.err(`  ${issue.path}: ${issue.message}`);
    return;
  }
  io.err(`orchestrator: ${(error as Error)?.message ?? String(error)}`);
}

async function migrate(io: Io, flags: Flags): Promise<number> {
  const config = loadBrainConfig({ env: io.env });
  const { db } = openDatabase(config.databaseUrl);
  try {
    if (flags.values.status) {
      const status = await migrationStatus(db);
      io.out(
        flags.json
          ? JSON.stringify(status, null, 2)
          : `current: ${status.current ?? "(empty)"}\nlatest: ${status.latest}\npending: ${status.pending.join(", ") || "none"}`,
      );
      return status.pending.length === 0 ? EXIT.ok : EXIT.conflict;
    }
    const run = await migrateToLatest(db);
    io.out(
      flags.json
        ? JSON.stringify(run)
        : run.applied.length
          ? `applied ${run.applied.join(", ")}`
          : `up to date (${run.current})`,
    );
    return EXIT.ok;
  } finally {
    await db.destroy();
  }
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return "";
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return text;
}
