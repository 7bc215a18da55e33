/**
 * `@orchestrator/webpanel`: the web panel, a Nuxt SPA built into static files
 * that the Brain serves at `/`. `panelDirectory()` says where the build is.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The built panel (`dist/panel` of this package), or null when it has not been built. */
export function panelDirectory(): string | null {
  const dir = fileURLToPath(new URL("../dist/panel", import.meta.url));
  return existsSync(`${dir}/index.html`) ? dir : null;
}
