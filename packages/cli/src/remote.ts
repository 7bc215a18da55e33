/** Commands that talk to a Brain (`ORCH_URL`, `ORCH_TOKEN`) or to template storage. */
import { resolve } from "node:path";
import { guardPlugin, type TemplateStorage, ValidationError } from "@orchestrator/core";
import { publishTemplate } from "@orchestrator/core/cache";
import { defaultStorage, loadStorageConfig } from "@orchestrator/node-agent";
import { ApiClient } from "./api-client.js";
import { type Io, table } from "./output.js";

export interface Flags {
  json: boolean;
  values: Record<string, string | string[] | boolean | undefined>;
}

/** The agent's storage settings (`ORCH_STORAGE`, `ORCH_S3_*`), with `--storage`/`--storage-dir` on top. */
function storageFrom(io: Io, flags: Flags): TemplateStorage {
  const { storage, "storage-dir": storageDir } = flags.values;
  return defaultStorage(
    loadStorageConfig({
      ...io.env,
      ...(typeof storage === "string" ? { ORCH_STORAGE: storage } : {}),
      ...(typeof storageDir === "string" ? { ORCH_STORAGE_DIR: storageDir } : {}),
    }),
  );
}

/** `template push <dir>`: uploads changed layer files and template.json, then registers the version. */
export async function templatePush(io: Io, flags: Flags, dir: string): Promise<number> {
  const storage = guardPlugin(storageFrom(io, flags));
  try {
    if (!flags.json) io.err(`pushing ${dir} ...`);
    const result = await publishTemplate(storage, resolve(dir), {
      dryRun: flags.values["dry-run"] === true,
    });
    for (const layer of result.layers) {
      if (!flags.json) io.err(`  layer ${layer.layer}: ${JSON.stringify(layer).slice(0, 200)}`);
    }
    let registered: unknown = null;
    if (!result.dryRun && flags.values.register !== false && io.env.ORCH_TOKEN) {
      registered = await ApiClient.fromEnv(io.env).request("POST", "/templates", {
        definition: result.definition,
      });
    }
    if (flags.json) io.out(JSON.stringify({ ...result, registered }, null, 2));
    else {
      io.out(
        `${result.name}: ${result.documentChanged ? "template.json updated" : "template.json unchanged"}${result.dryRun ? " (dry run)" : ""}`,
      );
      if (registered)
        io.out(
          `registered with the Brain: ${JSON.stringify((registered as { version?: { version?: number } }).version?.version ?? registered)}`,
        );
    }
    return 0;
  } finally {
    await storage.destroy?.();
  }
}

export async function templateList(io: Io, flags: Flags): Promise<number> {
  const { items } = await ApiClient.fromEnv(io.env).request<{ items: Record<string, unknown>[] }>(
    "GET",
    "/templates",
  );
  io.out(
    flags.json
      ? JSON.stringify(items, null, 2)
      : table(items, ["name", "latestVersion", "description"]),
  );
  return 0;
}

export async function instanceCommand(
  io: Io,
  flags: Flags,
  action: string,
  args: readonly string[],
): Promise<number> {
  const api = ApiClient.fromEnv(io.env);
  const print = (value: unknown, columns: string[]) =>
    io.out(
      flags.json
        ? JSON.stringify(value, null, 2)
        : table(Array.isArray(value) ? value : [value as Record<string, unknown>], columns),
    );
  const columns = ["id", "name", "templateName", "state", "desiredState", "nodeId", "ports"];
  switch (action) {
    case "list": {
      const { items } = await api.request<{ items: Record<string, unknown>[] }>(
        "GET",
        "/instances?limit=1000",
      );
      print(items, columns);
      return 0;
    }
    case "create": {
      const [template, name] = args;
      if (!template || !name)
        throw new ValidationError([
          {
            path: "arguments",
            message: "usage: instance create <template> <name> [--var KEY=VALUE ...]",
          },
        ]);
      const variables: Record<string, string> = {};
      const pairs = flags.values.var;
      for (const pair of Array.isArray(pairs) ? pairs : []) {
        const index = pair.indexOf("=");
        if (index <= 0)
          throw new ValidationError([
            { path: "--var", message: `expected KEY=VALUE, got ${JSON.stringify(pair)}` },
          ]);
        variables[pair.slice(0, index)] = pair.slice(index + 1);
      }
      print(await api.request("POST", "/instances", { template, name, variables }), columns);
      return 0;
    }
    case "start":
    case "stop":
    case "restart":
    case "kill": {
      const [id] = args;
      if (!id)
        throw new ValidationError([
          { path: "arguments", message: `usage: instance ${action} <id>` },
        ]);
      print(await api.request("POST", `/instances/${encodeURIComponent(id)}/${action}`), columns);
      return 0;
    }
    case "destroy": {
      const [id] = args;
      if (!id)
        throw new ValidationError([{ path: "arguments", message: "usage: instance destroy <id>" }]);
      print(await api.request("DELETE", `/instances/${encodeURIComponent(id)}`), columns);
      return 0;
    }
    case "logs": {
      const [id] = args;
      if (!id)
        throw new ValidationError([{ path: "arguments", message: "usage: instance logs <id>" }]);
      const controller = new AbortController();
      process.once("SIGINT", () => controller.abort());
      const response = await api.fetch(
        "GET",
        `/instances/${encodeURIComponent(id)}/logs`,
        undefined,
        controller.signal,
      );
      if (!response.ok)
        return api.request("GET", `/instances/${encodeURIComponent(id)}`).then(() => 1);
      const decoder = new TextDecoder();
      let buffer = "";
      try {
        for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end = buffer.indexOf("\n\n");
          while (end >= 0) {
            const event = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = event.split("\n").find((line) => line.startsWith("data: "));
            if (data) {
              const line = JSON.parse(data.slice(6)) as { line: string; stream: string };
              io.out(flags.json ? JSON.stringify(line) : line.line);
            }
            end = buffer.indexOf("\n\n");
          }
        }
      } catch (error) {
        if (!controller.signal.aborted) throw error;
      }
      return 0;
    }
    default:
      throw new ValidationError([
        { path: "command", message: `unknown instance command '${action}'` },
      ]);
  }
}

export async function joinToken(io: Io, flags: Flags): Promise<number> {
  const minutes = Number(flags.values["expires-in"] ?? 60);
  const created = await ApiClient.fromEnv(io.env).request<{
    secret: string;
    token: { expiresAt: string };
  }>("POST", "/nodes/join-tokens", { expiresInMinutes: minutes });
  if (flags.json) io.out(JSON.stringify(created, null, 2));
  else {
    const url = ApiClient.fromEnv(io.env).baseUrl;
    io.out(`Join token (one use, expires ${created.token.expiresAt}):\n  ${created.secret}\n`);
    io.out(
      `On the new node:\n  ORCH_BRAIN_URL=${url} ORCH_JOIN_TOKEN=${created.secret} orchestrator agent`,
    );
  }
  return 0;
}

/**
 * `login`: exchanges a username and password (ORCH_USERNAME, default admin;
 * ORCH_PASSWORD or the first line of stdin) for a new API token, printed for
 * `export ORCH_TOKEN=$(orchestrator login)`.
 */
export async function login(
  io: Io,
  flags: Flags,
  readStdin: () => Promise<string>,
): Promise<number> {
  const username = String(flags.values.username ?? io.env.ORCH_USERNAME ?? "admin");
  const password = io.env.ORCH_PASSWORD ?? (await readStdin()).split("\n")[0]!.trim();
  if (!password)
    throw new ValidationError([
      { path: "ORCH_PASSWORD", message: "give the password in ORCH_PASSWORD or on stdin" },
    ]);
  const base = ApiClient.fromEnv(io.env);
  const session = await base.login(username, password);
  const created = await new ApiClient(base.baseUrl, session).request<{
    secret: string;
    token: { id: string };
  }>("POST", "/tokens", { name: String(flags.values.name ?? "cli") });
  io.out(flags.json ? JSON.stringify(created) : created.secret);
  return 0;
}
