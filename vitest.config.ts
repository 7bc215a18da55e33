import { existsSync, readdirSync, readFileSync } from "node:fs";
import { defineConfig } from "vitest/config";

// `scripts/services.sh up` writes the test services' variables here; variables
// already set in the environment win.
if (existsSync(".services.env")) {
  for (const line of readFileSync(".services.env", "utf8").split("\n")) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match && process.env[match[1]!] === undefined) process.env[match[1]!] = match[2]!;
  }
}

// Workspace packages are imported from source (no build needed to test).
// No "module" condition: it selects bundler-only builds (the AWS SDK's dist-es,
// extensionless imports) that Node then fails to load when vitest externalizes them.
const conditions = ["@orchestrator/source", "node", "import", "default"];

const packages = readdirSync("packages").filter((name) => existsSync(`packages/${name}/test`));

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ["@orchestrator/source"] } },
  test: {
    testTimeout: 20_000,
    hookTimeout: 60_000,
    projects: [
      ...packages.map((name) => ({
        extends: true as const,
        test: { name, root: `packages/${name}`, include: ["test/**/*.test.ts"] },
      })),
      { extends: true as const, test: { name: "repo", include: ["test/**/*.test.ts"] } },
    ],
  },
});
