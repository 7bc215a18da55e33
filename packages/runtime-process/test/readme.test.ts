import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitUntilReady } from "@orchestrator/core";
import { RUNTIME_CONFORMANCE_SERVER } from "@orchestrator/core/testing";
import { afterAll, describe, expect, it } from "vitest";
import { ProcessRuntime } from "../src/index.js";

describe("README example", () => {
  let base = "";
  afterAll(() => rm(base, { recursive: true, force: true }));

  it("runs as written (with temporary directories)", async () => {
    base = await mkdtemp(join(tmpdir(), "orch-process-readme-"));
    const instances = join(base, "instances");
    await mkdir(join(instances, "lobby-1"), { recursive: true });
    await writeFile(join(instances, "lobby-1", "server.sh"), RUNTIME_CONFORMANCE_SERVER);

    const runtime = new ProcessRuntime({
      stateDirectory: join(base, "runtime"),
      instanceRoots: [instances],
    });
    await runtime.create({
      instanceId: "lobby-1",
      command: ["sh", "server.sh"],
      env: { GREETING: "hello" },
      workingDirectory: join(instances, "lobby-1"),
      ports: [],
      resources: { memoryMb: 256, cpu: 0.5, diskMb: 64 },
      labels: { node: "n1", epoch: "1" },
      stop: { input: "stop", signal: "SIGTERM", timeoutSeconds: 10 },
    });
    await runtime.start("lobby-1");
    await waitUntilReady(
      runtime,
      "lobby-1",
      { kind: "log", pattern: /ready/ },
      {
        timeoutMs: 30_000,
      },
    );
    await runtime.sendInput("lobby-1", "say hi");
    expect((await runtime.list({ node: "n1" })).map((info) => info.status)).toEqual(["running"]);
    const stopped = await runtime.stop("lobby-1");
    expect(stopped).toMatchObject({ status: "exited", exitCode: 0 });
    await runtime.remove("lobby-1");
    expect(await runtime.list()).toEqual([]);
    await runtime.destroy();
  });
});
