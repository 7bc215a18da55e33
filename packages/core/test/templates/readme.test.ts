// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${NAME} placeholders in plain strings are the subject of these tests
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mergeLayers } from "../../src/templates/index.js";
import { resolveVariables } from "../../src/variables/index.js";
import { writeTree } from "./fixtures.js";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "orch-readme-"));
  await writeTree(join(root, "layers/base"), {
    "server.jar": "binary jar",
    "server.properties": "server-port=${PORT}\nmotd=${MOTD}\nmax-players=10\n",
  });
  await writeTree(join(root, "layers/survival"), {
    "server.properties": "max-players=${MAX_PLAYERS}\ndifficulty=hard\n",
    ".wh.server.jar": "",
    "paper.jar": "another jar",
  });
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("README example (templates and variables)", () => {
  it("runs as written", async () => {
    // --- the README example, with its relative paths under `root` ---
    const variables = resolveVariables(
      {
        MOTD: { type: "string", default: "Hello" },
        MAX_PLAYERS: { type: "integer", min: 1, max: 100 },
      },
      { MAX_PLAYERS: 20 },
      {
        builtIns: {
          instanceId: "i-1",
          instanceName: "survival",
          nodeId: "n-1",
          ports: [{ name: "game", port: 25565 }],
          memoryMb: 2048,
          cpu: 2,
        },
      },
    );
    const { manifest } = await mergeLayers({
      layers: [join(root, "layers/base"), join(root, "layers/survival")], // bottom first
      target: join(root, "instances/i-1"),
      files: {
        substitute: ["**/*.properties"],
        merge: { "server.properties": "properties" },
        link: ["**/*.jar"],
      },
      variables,
    });
    // ---
    expect(await readFile(join(root, "instances/i-1/server.properties"), "utf8")).toBe(
      "server-port=25565\nmotd=Hello\nmax-players=20\ndifficulty=hard\n",
    );
    expect(manifest.entries.map((entry) => [entry.path, entry.layer, entry.policy])).toEqual([
      ["paper.jar", "survival", "link"],
      ["server.properties", "survival", "merge"],
    ]);
  });
});
