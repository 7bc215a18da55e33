// biome-ignore-all lint/suspicious/noTemplateCurlyInString: templates hold literal ${VARIABLE} placeholders
/**
 * Hostile templates and variables end to end (real Brain and agent processes,
 * SQLite, process runtime, folder storage): what `orchestrator template push`
 * refuses, what the agent refuses when storage was tampered with, and how
 * hostile variable values land in the server's files and environment.
 */
import { execFileSync } from "node:child_process";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CliProcess, stopAllCliProcesses, waitFor } from "./support/cli-process.js";
import { type AgentHandle, Platform, SH_SERVER } from "./support/platform.js";
import { snapshot } from "./support/snapshot.js";

describe("hostile templates and variables (real processes)", { timeout: 90_000 }, () => {
  let platform: Platform;
  let agent: AgentHandle;

  /** Pushes a layer folder prepared by `plant`; returns the CLI's exit code and output. */
  async function pushPlanted(name: string, plant: (layer: string) => Promise<void>) {
    const folder = join(platform.dir, "hostile", name);
    const layer = join(folder, "layers", name);
    await mkdir(layer, { recursive: true });
    await writeFile(join(layer, "server.sh"), SH_SERVER);
    await plant(layer);
    await writeFile(
      join(folder, "template.json"),
      JSON.stringify({
        name,
        layers: [name],
        runtime: { process: { command: ["sh", "server.sh"] } },
        ports: [{ name: "game", protocol: "tcp" }],
        resources: { memoryMb: 32, cpu: 0.05, diskMb: 5 },
        readiness: { log: "ready on", timeoutSeconds: 30 },
      }),
    );
    return CliProcess.run(
      ["template", "push", folder, "--storage", "folder", "--storage-dir", platform.folderStorage],
      { ORCH_URL: platform.url, ORCH_TOKEN: platform.token },
      platform.dir,
    );
  }

  beforeAll(async () => {
    platform = await Platform.started("sqlite");
    agent = await platform.addAgent("hostile-agent", "process", "42600-42699");
  }, 90_000);

  afterAll(async () => {
    try {
      await platform?.dispose();
    } finally {
      await stopAllCliProcesses();
    }
  }, 60_000);

  it.each([
    [
      "a symlink out of the layer",
      (layer: string) => symlink("/etc/passwd", join(layer, "passwd")),
    ],
    [
      "a symlink chain ending outside",
      async (layer: string) => {
        await symlink("/etc", join(layer, "hop1"));
        await symlink("hop1/passwd", join(layer, "hop2"));
      },
    ],
    [
      "a symlink to a file inside the layer",
      (layer: string) => symlink("server.sh", join(layer, "alias.sh")),
    ],
    [
      "a FIFO",
      async (layer: string) => {
        execFileSync("mkfifo", [join(layer, "pipe")]);
      },
    ],
  ])(
    "template push refuses %s: non-zero exit, storage untouched, nothing registered",
    async (what, plant) => {
      const name = `hostile-${what.replace(/[^a-z]+/g, "-").replace(/^-|-$/g, "")}`.slice(0, 60);
      const before = await snapshot([platform.folderStorage]);
      const pushed = await pushPlanted(name, plant);
      expect(pushed.code, pushed.output).not.toBe(0);
      expect(pushed.output).not.toContain("registered with the Brain");
      expect(await snapshot([platform.folderStorage])).toEqual(before);
      expect((await platform.api("GET", `/templates/${name}`)).status).toBe(404);
    },
  );

  it("template push refuses a setuid file", async () => {
    const pushed = await pushPlanted("hostile-setuid", async (layer) => {
      await writeFile(join(layer, "suid"), "#!/bin/sh\n", { mode: 0o4755 });
      execFileSync("chmod", ["4755", join(layer, "suid")]);
    });
    // Either refused, or published without the setuid bit: never a setuid file in storage.
    if (pushed.code === 0) {
      const stored = await snapshot([platform.folderStorage]);
      for (const [path, entry] of Object.entries(stored))
        if (path.endsWith("suid")) expect(entry).not.toMatch(/^file [4-7]\d{3} /);
    } else {
      expect(pushed.output).not.toContain("registered with the Brain");
    }
  });

  it("registering a template with reserved environment names is refused (422)", async () => {
    for (const name of ["LD_PRELOAD", "NODE_OPTIONS", "PATH"]) {
      const response = await platform.api("POST", "/templates", {
        definition: {
          name: `reserved-${name.toLowerCase().replace(/_/g, "-")}`,
          layers: ["x"],
          runtime: { process: { command: ["sh", "server.sh"] } },
          env: { [name]: "/tmp/evil" },
          resources: { memoryMb: 32, cpu: 0.05, diskMb: 5 },
        },
      });
      expect(response.status, name).toBeGreaterThanOrEqual(400);
      expect(response.status, name).toBeLessThan(500);
    }
  });

  it("hostile variable values land literally: no expansion of other variables or secrets, no shell, no new lines", async () => {
    const pushed = await platform.pushTemplate({
      name: "hostile-vars",
      runtime: "process",
      files: {
        "server.sh": `printf '%s\\n' "$MOTD" > env-motd.txt\n${SH_SERVER}`,
        "server.properties": "motd=${MOTD}\nadmin=false\n",
        "config.json": '{"motd": "${MOTD}", "admin": false}\n',
      },
      extra: {
        variables: {
          MOTD: { type: "string", default: "hi", maxLength: 500 },
          RCON_PASSWORD: { type: "string", secret: true, default: "s3cr3t-rcon" },
        },
        files: { substitute: ["*.properties", "*.json"] },
        env: { PORT: "${PORT}", INSTANCE_NAME: "${INSTANCE_NAME}", MOTD: "${MOTD}" },
      },
    });
    expect(pushed.code, pushed.output).toBe(0);

    // A newline in a single-line string is refused at the API (it could add keys to .properties).
    const newline = await platform.api("POST", "/instances", {
      template: "hostile-vars",
      name: "vars-newline",
      variables: { MOTD: "x\nadmin=true" },
    });
    expect(newline.status).toBe(400);

    const hostile = '${RCON_PASSWORD} ${INSTANCE_NAME} $(id) `id` ; rm -rf / && echo "q" | \\ \'';
    const id = await platform.createInstance("hostile-vars", "vars-literal", { MOTD: hostile });
    await platform.waitForState(id, "RUNNING");
    const dir = join(agent.dataDir, "instances", id);
    const envMotd = await waitFor("the server's copy of its environment", () =>
      readFile(join(dir, "env-motd.txt"), "utf8"),
    );
    expect(envMotd).toBe(`${hostile}\n`);
    const properties = await readFile(join(dir, "server.properties"), "utf8");
    expect(properties).not.toContain("s3cr3t-rcon");
    expect(properties).toContain("${RCON_PASSWORD}");
    expect(properties.split("\n").filter((line) => line.startsWith("admin="))).toEqual([
      "admin=false",
    ]);
    const json = await readFile(join(dir, "config.json"), "utf8");
    expect(json).not.toContain("s3cr3t-rcon");
    expect(json).toContain("${RCON_PASSWORD}");
  });

  // Substitution escapes values for the file's format (core: `escapingForPath`):
  // in a `.json` file a value is JSON string content, so a quote cannot close it.
  it("a quote in a variable value cannot add keys to a substituted JSON file", async () => {
    const id = await platform.createInstance("hostile-vars", "vars-json", {
      MOTD: 'x", "admin": true, "y": "',
    });
    await platform.waitForState(id, "RUNNING");
    const json = await readFile(join(agent.dataDir, "instances", id, "config.json"), "utf8");
    const parsed = JSON.parse(json) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual(["admin", "motd"]);
    expect(parsed.admin).toBe(false);
  });
});
