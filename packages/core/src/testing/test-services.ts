/**
 * The real services the conformance suites run against (see scripts/services.sh).
 * A test that needs one reads its variables here: when they are missing the test
 * is skipped with a visible reason, and the repository's guard test fails in CI.
 */
import { existsSync, readFileSync } from "node:fs";

export const TEST_SERVICES = {
  mysql: ["ORCH_TEST_MYSQL_URL"],
  docker: ["ORCH_TEST_DOCKER", "ORCH_TEST_DOCKER_IMAGE", "ORCH_TEST_NODE_IMAGE"],
  s3: [
    "ORCH_TEST_S3_ENDPOINT",
    "ORCH_TEST_S3_BUCKET",
    "ORCH_TEST_S3_ACCESS_KEY",
    "ORCH_TEST_S3_SECRET_KEY",
    "ORCH_TEST_S3_REGION",
  ],
  chromium: ["ORCH_TEST_CHROMIUM"],
} as const;

export type TestServiceName = keyof typeof TEST_SERVICES;

export type TestServiceEnv = Readonly<Record<string, string>>;

/** The service's variables, or null when any is missing. */
export function testServiceEnv(
  service: TestServiceName,
  env: NodeJS.ProcessEnv = process.env,
): TestServiceEnv | null {
  const values: Record<string, string> = {};
  for (const name of TEST_SERVICES[service]) {
    const value = env[name];
    if (!value) return null;
    values[name] = value;
  }
  return values;
}

/** Names of the variables a service needs that are not set. */
export function missingTestServiceEnv(
  service: TestServiceName,
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  return TEST_SERVICES[service].filter((name) => !env[name]);
}

/** Why a test of this service is skipped, or null when it can run. */
export function testServiceSkipReason(
  service: TestServiceName,
  env: NodeJS.ProcessEnv = process.env,
): string | null {
  const missing = missingTestServiceEnv(service, env);
  if (missing.length === 0) return null;
  return `${service} tests skipped: ${missing.join(", ")} not set (run: npm run services up)`;
}

/**
 * Loads the variables `scripts/services.sh up` wrote (default `.services.env`)
 * into `env`; variables already set win. Used by the test and bench runners.
 */
export function loadTestServicesEnv(
  path = ".services.env",
  env: NodeJS.ProcessEnv = process.env,
): void {
  if (!existsSync(path)) return;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match && env[match[1]!] === undefined) env[match[1]!] = match[2]!;
  }
}
