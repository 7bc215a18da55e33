import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OrchestratorError, waitUntilReady } from "@orchestrator/core";
import {
  describeRuntimeConformance,
  testServiceEnv,
  testServiceSkipReason,
} from "@orchestrator/core/testing";
import Dockerode from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { classifyDockerError } from "../src/classify-docker-error.js";
import { DockerFrameDecoder } from "../src/docker-frame-decoder.js";
import { DOCKER_LABELS, DockerRuntime } from "../src/docker-runtime.js";

const service = testServiceEnv("docker");
const skipReason = testServiceSkipReason("docker");
const image = service?.ORCH_TEST_DOCKER_IMAGE ?? "orchestrator/busybox:test";
const run = randomBytes(4).toString("hex");

function dockerClient(): Dockerode {
  const url = service?.ORCH_TEST_DOCKER ?? "unix:///var/run/docker.sock";
  if (url.startsWith("unix://")) return new Dockerode({ socketPath: url.slice("unix://".length) });
  const parsed = new URL(url.replace(/^tcp:/, "http:"));
  return new Dockerode({ host: parsed.hostname, port: Number(parsed.port) || 2375 });
}

const docker = dockerClient();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeRuntimeConformance("docker", {
  skipReason,
  create: ({ instancesRoot }) =>
    new DockerRuntime({
      docker,
      allowedImages: [image],
      instanceRoots: [instancesRoot],
      namespace: `conformance-${run}`,
      pull: "never",
    }),
  handleExists: async (info) => {
    try {
      await docker.getContainer(info.handle).inspect();
      return true;
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return false;
      throw error;
    }
  },
  specDefaults: { image },
  refusedImage: "evil/miner:latest",
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== "object" || !address) throw new Error("no port");
  return address.port;
}

describe.skipIf(skipReason !== null)("DockerRuntime extras", () => {
  let base: string;
  let runtime: DockerRuntime;
  const namespace = `extras-${run}`;

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), "orch-docker-runtime-"));
    runtime = new DockerRuntime({
      docker,
      allowedImages: [image],
      instanceRoots: [base],
      namespace,
      capAdd: ["NET_BIND_SERVICE"],
      pidsLimit: 64,
      pull: "never",
    });
  });

  afterAll(async () => {
    for (const info of await runtime.list()) await runtime.remove(info.instanceId);
    await runtime.destroy();
    await rm(base, { recursive: true, force: true });
  });

  it("enforces the local policy on the container, publishes ports, probes the container's address", async () => {
    const instanceId = `extras-${run}-web`;
    const workingDirectory = join(base, instanceId);
    await mkdir(workingDirectory);
    await writeFile(join(workingDirectory, "index.html"), "hello");
    const hostPort = await freePort();
    const info = await runtime.create({
      instanceId,
      image,
      command: ["httpd", "-f", "-p", "8080", "-h", "/data"],
      env: { GREETING: "hi" },
      workingDirectory,
      ports: [{ name: "http", protocol: "tcp", hostPort, containerPort: 8080 }],
      resources: { memoryMb: 64, cpu: 0.5, diskMb: 16 },
      labels: { node: "n1", epoch: "7" },
      stop: { input: null, signal: "SIGTERM", timeoutSeconds: 5 },
    });
    const container = await docker.getContainer(info.handle).inspect();
    const host = container.HostConfig;
    expect(host.Privileged).toBe(false);
    expect(host.CapDrop).toEqual(["ALL"]);
    expect(host.CapAdd).toEqual(["NET_BIND_SERVICE"]);
    expect(host.SecurityOpt).toEqual(["no-new-privileges:true"]);
    expect(host.PidsLimit).toBe(64);
    expect(host.Memory).toBe(64 * 1024 * 1024);
    expect(host.MemorySwap).toBe(64 * 1024 * 1024);
    expect(host.NanoCpus).toBe(500_000_000);
    expect(host.Init).toBe(true);
    expect(host.NetworkMode).toBe("bridge");
    expect(host.IpcMode).toBe("private");
    expect(host.PidMode ?? "").toBe("");
    expect(host.RestartPolicy?.Name).toBe("no");
    expect(host.Binds ?? []).toEqual([]);
    expect(container.Mounts.map((mount) => [mount.Type, mount.Source, mount.Destination])).toEqual([
      ["bind", workingDirectory, "/data"],
    ]);
    expect(container.Config.Labels[DOCKER_LABELS.namespace]).toBe(namespace);
    expect(container.Config.Labels[`${DOCKER_LABELS.labelPrefix}epoch`]).toBe("7");
    expect(container.Config.Env).toContain("GREETING=hi");

    await runtime.start(instanceId);
    const ready = await waitUntilReady(
      runtime,
      instanceId,
      { kind: "tcp", port: "http" },
      {
        timeoutMs: 10_000,
        pollIntervalMs: 20,
      },
    );
    expect(ready.address?.port).toBe(8080);
    expect(ready.address?.host).not.toBe("127.0.0.1");
    const published = (await docker.getContainer(info.handle).inspect()).NetworkSettings.Ports;
    expect(published["8080/tcp"]?.[0]?.HostPort).toBe(String(hostPort));
    const stats = await runtime.stats(instanceId);
    expect(stats.networkRxBytes).toBeGreaterThanOrEqual(0);
    expect(stats.diskBytes).toBeGreaterThan(0);

    // Another namespace on the same engine sees nothing of ours.
    const other = new DockerRuntime({ docker, allowedImages: [image], namespace: `other-${run}` });
    try {
      expect(await other.list()).toEqual([]);
      expect(await other.inspect(instanceId)).toBeNull();
      await expect(other.stop(instanceId)).rejects.toMatchObject({ code: "NOT_FOUND" });
    } finally {
      await other.destroy();
    }
    expect((await runtime.list({ node: "n1" })).map((entry) => entry.labels)).toEqual([
      { node: "n1", epoch: "7" },
    ]);
    await runtime.remove(instanceId);
    expect(await runtime.list()).toEqual([]);
  }, 60_000);

  it("refuses dangerous operator settings at construction", () => {
    for (const config of [
      { capAdd: ["SYS_ADMIN"] },
      { capAdd: ["CAP_NET_ADMIN"] },
      { network: "host" },
      { network: "container:abc" },
      { mountPath: "/" },
      { namespace: "a b" },
    ]) {
      expect(() => new DockerRuntime({ docker, allowedImages: [image], ...config })).toThrow(
        expect.objectContaining({ code: "VALIDATION_FAILED" }),
      );
    }
  });

  it("refuses a missing image when pulling is off", async () => {
    const instanceId = `extras-${run}-noimage`;
    const workingDirectory = join(base, instanceId);
    await mkdir(workingDirectory);
    const strict = new DockerRuntime({
      docker,
      allowedImages: ["orchestrator/*"],
      instanceRoots: [base],
      namespace,
      pull: "never",
    });
    try {
      await expect(
        strict.create({
          instanceId,
          image: "orchestrator/does-not-exist:1",
          command: [],
          env: {},
          workingDirectory,
          ports: [],
          resources: { memoryMb: 64, cpu: 1, diskMb: 0 },
          labels: {},
          stop: { input: null, signal: "SIGTERM", timeoutSeconds: 1 },
        }),
      ).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    } finally {
      await strict.destroy();
    }
  });

  it("bounds engine calls, never the streams: a short deadline still follows logs and exits past it", async () => {
    const quick = new DockerRuntime({
      docker,
      allowedImages: [image],
      instanceRoots: [base],
      namespace: `${namespace}-deadline`,
      pull: "never",
      requestTimeoutMs: 300,
    });
    const exits: number[] = [];
    await quick.onExit((exit) => exits.push(exit.exitCode ?? -1));
    const instanceId = `extras-${run}-late`;
    const workingDirectory = join(base, instanceId);
    await mkdir(workingDirectory);
    await writeFile(
      join(workingDirectory, "late.sh"),
      "echo early\nsleep 1.5\necho late\nexit 7\n",
    );
    try {
      await quick.create({
        instanceId,
        image,
        command: ["sh", "late.sh"],
        env: {},
        workingDirectory,
        ports: [],
        resources: { memoryMb: 32, cpu: 0.2, diskMb: 8 },
        labels: {},
        stop: { input: null, signal: "SIGTERM", timeoutSeconds: 2 },
      });
      await quick.start(instanceId);
      const deadline = Date.now() + 15_000;
      while (exits.length === 0 && Date.now() < deadline) await sleep(100);
      expect(exits).toEqual([7]); // the event stream outlived the 300 ms deadline
      const lines: string[] = [];
      for await (const line of await quick.logs(instanceId)) lines.push(line.line);
      expect(lines).toEqual(["early", "late"]); // and so did the log follow
    } finally {
      await quick.remove(instanceId).catch(() => undefined);
      await quick.destroy();
    }
  });

  it("fails fast with UNAVAILABLE when the engine accepts connections and answers nothing (hung)", async () => {
    const socketPath = join(base, "hung.sock");
    const held: Socket[] = [];
    const hung = createServer((socket) => held.push(socket)); // reads nothing, answers nothing
    await new Promise<void>((resolve) => hung.listen(socketPath, resolve));
    const runtime = new DockerRuntime({
      docker: new Dockerode({ socketPath }),
      allowedImages: [image],
      requestTimeoutMs: 300,
    });
    try {
      const started = performance.now();
      const failure = await runtime.list().catch((error: unknown) => error);
      expect(performance.now() - started).toBeLessThan(3_000);
      expect(failure).toMatchObject({ code: "UNAVAILABLE", retryable: true });
      expect((failure as Error).message).toMatch(/did not answer ping within 300 ms/);
    } finally {
      await runtime.destroy();
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => hung.close(resolve));
    }
  });

  it("refuses deadlines that are not sensible", () => {
    for (const requestTimeoutMs of [0, -1, 1.5, 10_000_000]) {
      expect(() => new DockerRuntime({ docker, allowedImages: [image], requestTimeoutMs })).toThrow(
        /requestTimeoutMs/,
      );
    }
  });

  it("reports an unreachable engine as UNAVAILABLE", async () => {
    const nowhere = new DockerRuntime({
      docker: new Dockerode({ socketPath: join(base, "no.sock") }),
      allowedImages: [image],
    });
    await expect(nowhere.list()).rejects.toMatchObject({ code: "UNAVAILABLE", retryable: true });
  });
});

describe("DockerFrameDecoder", () => {
  const frame = (type: number, text: string) => {
    const payload = Buffer.from(text);
    const header = Buffer.alloc(8);
    header[0] = type;
    header.writeUInt32BE(payload.length, 4);
    return Buffer.concat([header, payload]);
  };

  it("demultiplexes frames split anywhere and packed together", () => {
    const seen: string[] = [];
    const decoder = new DockerFrameDecoder((stream, payload) => seen.push(`${stream}:${payload}`));
    const bytes = Buffer.concat([frame(1, "out 1\n"), frame(2, "err 1\n"), frame(1, "out 2\n")]);
    decoder.push(bytes.subarray(0, 3));
    decoder.push(bytes.subarray(3, 12));
    expect(seen).toEqual([]);
    decoder.push(bytes.subarray(12));
    expect(seen).toEqual(["stdout:out 1\n", "stderr:err 1\n", "stdout:out 2\n"]);
    expect(decoder.pendingBytes).toBe(0);
  });

  it("passes a raw (TTY) stream through as stdout", () => {
    const seen: string[] = [];
    const decoder = new DockerFrameDecoder((stream, payload) => seen.push(`${stream}:${payload}`));
    decoder.push(Buffer.from("plain text output\n"));
    expect(seen).toEqual(["stdout:plain text output\n"]);
  });
});

describe("classifyDockerError", () => {
  it("maps engine answers to stable codes", () => {
    const code = (error: unknown) => classifyDockerError(error, "x").code;
    expect(code({ statusCode: 404, json: { message: "No such container" } })).toBe("NOT_FOUND");
    expect(code({ statusCode: 409, json: { message: "name in use" } })).toBe("CONFLICT");
    expect(code({ statusCode: 400, json: { message: "bad" } })).toBe("VALIDATION_FAILED");
    expect(code({ code: "ECONNREFUSED" })).toBe("UNAVAILABLE");
    expect(code({ statusCode: 500, json: { message: "boom" } })).toBe("INTERNAL");
    const original = new OrchestratorError("FORBIDDEN", "no");
    expect(classifyDockerError(original, "x")).toBe(original);
  });
});
