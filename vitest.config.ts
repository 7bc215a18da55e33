import { existsSync, readdirSync } from "node:fs";
import { defineConfig } from "vitest/config";
import { loadTestServicesEnv } from "./packages/core/src/testing/test-services.js";

// `scripts/services.sh up` writes the test services' variables to .services.env.
loadTestServicesEnv();

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
