import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitUntilReady } from "@orchestrator/core";
import {
  RUNTIME_CONFORMANCE_SERVER,
  testServiceEnv,
  testServiceSkipReason,
} from "@orchestrator/core/testing";
import Dockerode from "dockerode";
import { afterAll, describe, expect, it } from "vitest";
import { DockerRuntime } from "../src/index.js";

const service = testServiceEnv("docker");
const skipReason = testServiceSkipReason("docker");

describe("README example", () => {
  let base = "";
  afterAll(() => (base ? rm(base, { recursive: true, force: true }) : undefined));

  it.skipIf(skipReason !== null)(
    `runs as written (test image, temporary directories)${skipReason ? ` — ${skipReason}` : ""}`,
    async () => {
      const socket = service!.ORCH_TEST_DOCKER!;
      const image = service!.ORCH_TEST_DOCKER_IMAGE!;
      base = await mkdtemp(join(tmpdir(), "orch-docker-readme-"));
      const instanceId = `lobby-${randomBytes(3).toString("hex")}`;
      const dir = join(base, instanceId);
      await mkdir(dir);
      await writeFile(join(dir, "server.sh"), RUNTIME_CONFORMANCE_SERVER);

      const runtime = new DockerRuntime({
        docker: new Dockerode({ socketPath: socket.replace(/^unix:\/\//, "") }),
        allowedImages: [image],
        instanceRoots: [base],
        namespace: `readme-${instanceId}`,
      });
      await runtime.create({
        instanceId,
        image,
        command: ["sh", "server.sh"],
        env: { GREETING: "hello" },
        workingDirectory: dir,
        ports: [],
        resources: { memoryMb: 256, cpu: 0.5, diskMb: 64 },
        labels: { node: "n1", epoch: "1" },
        stop: { input: "stop", signal: "SIGTERM", timeoutSeconds: 10 },
      });
      await runtime.start(instanceId);
      await waitUntilReady(
        runtime,
        instanceId,
        { kind: "log", pattern: /ready/ },
        {
          timeoutMs: 30_000,
        },
      );
      await runtime.sendInput(instanceId, "say hi");
      expect(await runtime.stop(instanceId)).toMatchObject({ status: "exited", exitCode: 0 });
      await runtime.remove(instanceId);
      expect(await runtime.list()).toEqual([]);
      await runtime.destroy();
    },
    60_000,
  );
});
