// `npm start`: builds the web panel once if it is not built yet, then runs
// `orchestrator start` from source (no other build step needed).
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const panel = `${root}packages/webpanel/dist/panel/index.html`;

if (!existsSync(panel)) {
  console.log("Building the web panel (first start only, ~30 s)...");
  const build = spawnSync("npm", ["run", "build", "--silent", "-w", "@orchestrator/webpanel"], {
    cwd: root,
    stdio: "inherit",
  });
  if (build.status !== 0)
    console.warn("The panel did not build; starting without it (the API works).");
}

const cli = spawn(
  process.execPath,
  [
    "--import",
    import.meta.resolve("tsx"),
    "--conditions=@orchestrator/source",
    `${root}packages/cli/src/bin.ts`,
    "start",
    ...process.argv.slice(2),
  ],
  { stdio: "inherit" },
);
// Ctrl-C reaches the child through the terminal's process group; a plain
// SIGTERM to this process is passed on.
process.on("SIGTERM", () => cli.kill("SIGTERM"));
process.on("SIGINT", () => undefined);
cli.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
