/**
 * Guard: in CI every real service must be configured and reachable, so no
 * suite can go green by skipping. Outside CI it reports what would be skipped.
 */
import { accessSync, constants } from "node:fs";
import { type RequestOptions, request } from "node:http";
import { connect } from "node:net";
import {
  missingTestServiceEnv,
  TEST_SERVICES,
  type TestServiceName,
} from "@orchestrator/core/testing";
import { describe, expect, it } from "vitest";

const inCi = Boolean(process.env.CI);

function tcpReachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 3000 });
    socket.once("connect", () => resolve(true));
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => resolve(false));
  });
}

function httpStatus(options: RequestOptions | string): Promise<number | null> {
  return new Promise((resolve) => {
    const req = request(options, (res) => {
      res.resume();
      resolve(res.statusCode ?? null);
    });
    req.setTimeout(3000, () => req.destroy());
    req.once("error", () => resolve(null));
    req.end();
  });
}

const reachable: Record<TestServiceName, () => Promise<boolean>> = {
  async mysql() {
    const url = new URL(process.env.ORCH_TEST_MYSQL_URL!);
    return tcpReachable(url.hostname, Number(url.port || 3306));
  },
  async docker() {
    const host = process.env.ORCH_TEST_DOCKER!;
    const options = host.startsWith("unix://")
      ? { socketPath: host.slice("unix://".length), path: "/_ping" }
      : { host: new URL(host).hostname, port: Number(new URL(host).port), path: "/_ping" };
    return (await httpStatus(options)) === 200;
  },
  async s3() {
    const status = await httpStatus(process.env.ORCH_TEST_S3_ENDPOINT!);
    return status !== null && status < 500;
  },
  async chromium() {
    try {
      accessSync(process.env.ORCH_TEST_CHROMIUM!, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  },
};

describe("test services", () => {
  const services = Object.keys(TEST_SERVICES) as TestServiceName[];

  it.each(services)("%s is configured and reachable (required in CI)", async (service) => {
    const missing = missingTestServiceEnv(service);
    if (missing.length > 0) {
      if (inCi) {
        expect.fail(`${service}: ${missing.join(", ")} not set in CI; run scripts/services.sh up`);
      }
      console.warn(`[services] ${service} not configured (${missing.join(", ")}): its tests skip`);
      return;
    }
    expect(await reachable[service](), `${service} is configured but not reachable`).toBe(true);
  });
});
