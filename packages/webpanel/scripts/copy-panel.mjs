// After `nuxt generate`: the static SPA (.output/public) becomes dist/panel,
// where `panelDirectory()` and the Brain look for it.
import { cpSync, existsSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const from = fileURLToPath(new URL("../.output/public", import.meta.url));
const to = fileURLToPath(new URL("../dist/panel", import.meta.url));
if (!existsSync(`${from}/index.html`)) {
  console.error(`no built panel in ${from}: did 'nuxt generate' fail?`);
  process.exit(1);
}
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
console.log(`panel copied to ${to}`);
