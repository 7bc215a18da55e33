import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrchestratorError } from "../../src/errors/orchestrator-error.js";
import type { RuntimeInstanceSpec } from "../../src/ports/runtime.js";
import {
  isImageAllowed,
  isReservedEnvName,
  normalizeImageReference,
  type RuntimePolicy,
  RuntimePolicyError,
  resolveInstanceDirectory,
  validateRuntimeSpec,
} from "../../src/runtime/runtime-spec-policy.js";

const root = "/srv/orchestrator/instances";

function spec(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: RuntimeInstanceSpec = {
    instanceId: "inst-1",
    command: ["java", "-Xmx1G", "-jar", "server.jar"],
    env: { GREETING: "hi; rm -rf /", PORT: "25565" },
    workingDirectory: `${root}/inst-1`,
    image: "orchestrator/minecraft:1",
    ports: [{ name: "game", protocol: "tcp", hostPort: 25565 }],
    resources: { memoryMb: 1024, cpu: 1, diskMb: 0 },
    labels: { "orchestrator/instance": "inst-1", epoch: "3" },
    stop: { input: "stop", signal: "SIGTERM", timeoutSeconds: 10 },
  };
  return { ...base, ...overrides };
}

const policy: RuntimePolicy = { instanceRoots: [root] };
const dockerPolicy: RuntimePolicy = { ...policy, allowedImages: ["orchestrator/*"] };

function refusal(input: unknown, withPolicy: RuntimePolicy = policy) {
  try {
    validateRuntimeSpec(input, withPolicy);
  } catch (error) {
    if (!OrchestratorError.isInstance(error)) throw error;
    return error as OrchestratorError & { issues: { kind: string; path: string }[] };
  }
  throw new Error("expected the spec to be refused");
}

describe("validateRuntimeSpec", () => {
  it("accepts a sound spec and returns a frozen copy with known properties only", () => {
    const result = validateRuntimeSpec(spec({ workingDirectory: `${root}/inst-1/` }), policy);
    expect(result.workingDirectory).toBe(`${root}/inst-1`);
    expect(result.command).toEqual(["java", "-Xmx1G", "-jar", "server.jar"]);
    // Values are data: shell syntax inside an env value or an argument is harmless.
    expect(result.env.GREETING).toBe("hi; rm -rf /");
    expect(Object.isFrozen(result) && Object.isFrozen(result.env)).toBe(true);
    expect(validateRuntimeSpec(spec({ command: ["./run", "; rm -rf /"] }), policy).command).toEqual(
      ["./run", "; rm -rf /"],
    );
  });

  it.each([
    ["LD_PRELOAD"],
    ["ld_library_path"],
    ["PATH"],
    ["NODE_OPTIONS"],
    ["DOCKER_HOST"],
    ["ORCH_JOIN_TOKEN"],
    ["BASH_ENV"],
  ])("refuses the reserved env name %s as FORBIDDEN", (name) => {
    const error = refusal(spec({ env: { [name]: "x" } }));
    expect(error).toBeInstanceOf(RuntimePolicyError);
    expect(error.code).toBe("FORBIDDEN");
    expect(error.issues).toEqual([expect.objectContaining({ path: `env.${name}` })]);
  });

  it("lets the operator reserve more env names", () => {
    expect(isReservedEnvName("JAVA_TOOL_OPTIONS")).toBe(false);
    expect(isReservedEnvName("JAVA_TOOL_OPTIONS", ["JAVA_*"])).toBe(true);
    expect(refusal(spec({ env: { JAVA_HOME: "/x" } }), { reservedEnv: ["JAVA_*"] }).code).toBe(
      "FORBIDDEN",
    );
  });

  it.each([
    [["/bin/echo hi; rm -rf /"]],
    [["server && curl evil"]],
    [["sh", "-c", "echo hi; rm -rf /"]],
    [["/bin/bash", "-ec", "id"]],
    [["busybox", "sh", "-c", "id"]],
    [["env", "LD_PRELOAD=/tmp/x.so", "server"]],
    [["sudo", "server"]],
  ])("refuses the shell-ish command %j", (command) => {
    expect(refusal(spec({ command })).code).toBe("FORBIDDEN");
  });

  it("runs a script through a shell as a file, and sh -c only when the operator allows it", () => {
    expect(
      validateRuntimeSpec(spec({ command: ["sh", "server.sh", "-c"] }), policy).command,
    ).toEqual(["sh", "server.sh", "-c"]);
    expect(
      validateRuntimeSpec(spec({ command: ["sh", "-c", "exec x"] }), {
        ...policy,
        allowShellCommand: true,
      }).command[1],
    ).toBe("-c");
  });

  it("refuses malformed commands as VALIDATION_FAILED", () => {
    expect(refusal(spec({ command: "java -jar server.jar" })).code).toBe("VALIDATION_FAILED");
    expect(refusal(spec({ command: [] })).code).toBe("VALIDATION_FAILED");
    expect(refusal(spec({ command: ["java", 3] })).code).toBe("VALIDATION_FAILED");
    expect(refusal(spec({ command: ["java", "a\0b"] })).code).toBe("VALIDATION_FAILED");
    // An image runtime may run the image's own command.
    expect(
      validateRuntimeSpec(spec({ command: [] }), { ...dockerPolicy, allowEmptyCommand: true })
        .command,
    ).toEqual([]);
  });

  it.each([
    ["/"],
    ["/var/run/docker.sock"],
    ["/run"],
    ["/var"],
    ["/etc/orchestrator"],
    ["/srv/orchestrator/instances"],
    ["/srv/orchestrator/other/inst-1"],
    ["/srv/orchestrator/instances/../../../etc"],
  ])("refuses the working directory %s", (workingDirectory) => {
    expect(refusal(spec({ workingDirectory })).code).toBe("FORBIDDEN");
  });

  it("accepts a data folder under root's home, never root's home itself", () => {
    const rootHome = { instanceRoots: ["/root/orchestrator/instances"] };
    expect(
      validateRuntimeSpec(
        spec({ workingDirectory: "/root/orchestrator/instances/inst-1" }),
        rootHome,
      ).workingDirectory,
    ).toBe("/root/orchestrator/instances/inst-1");
    expect(refusal(spec({ workingDirectory: "/root" }), rootHome).code).toBe("FORBIDDEN");
    expect(
      refusal(spec({ workingDirectory: "/etc/orchestrator/x" }), {
        instanceRoots: ["/etc/orchestrator"],
      }).code,
    ).toBe("FORBIDDEN");
  });

  it("refuses a relative working directory and bad instance ids", () => {
    expect(refusal(spec({ workingDirectory: "instances/x" })).code).toBe("VALIDATION_FAILED");
    expect(refusal(spec({ instanceId: "../x" })).code).toBe("VALIDATION_FAILED");
    expect(refusal(spec({ instanceId: "a/b" })).code).toBe("VALIDATION_FAILED");
  });

  it("refuses unknown properties such as privileged flags", () => {
    const error = refusal(spec({ privileged: true, hostConfig: { NetworkMode: "host" } }));
    expect(error.code).toBe("FORBIDDEN");
    expect(error.issues.map((issue) => issue.path)).toEqual(["privileged", "hostConfig"]);
    expect(refusal(spec({ resources: { memoryMb: 1, cpu: 1, diskMb: 0, gpu: 1 } })).code).toBe(
      "FORBIDDEN",
    );
  });

  it("applies the image allow-list only where images are used", () => {
    expect(validateRuntimeSpec(spec(), dockerPolicy).image).toBe("orchestrator/minecraft:1");
    expect(refusal(spec({ image: "evil/miner:latest" }), dockerPolicy).code).toBe("FORBIDDEN");
    expect(refusal(spec({ image: undefined }), dockerPolicy).code).toBe("VALIDATION_FAILED");
    expect(refusal(spec({ image: "Not An Image" }), dockerPolicy).code).toBe("VALIDATION_FAILED");
    // The process runtime ignores images.
    expect(validateRuntimeSpec(spec({ image: "evil/miner" }), policy).image).toBeUndefined();
  });

  it("matches image patterns per path segment", () => {
    expect(normalizeImageReference("busybox")).toBe("busybox:latest");
    expect(normalizeImageReference("registry:5000/a/b")).toBe("registry:5000/a/b:latest");
    expect(isImageAllowed("busybox", ["busybox:latest"])).toBe(true);
    expect(isImageAllowed("orchestrator/a:1", ["orchestrator/*"])).toBe(true);
    expect(isImageAllowed("orchestrator/a/b:1", ["orchestrator/*"])).toBe(false);
    expect(isImageAllowed("orchestrator/a/b:1", ["orchestrator/**"])).toBe(true);
    expect(isImageAllowed("orchestratorx/a:1", ["orchestrator/*"])).toBe(false);
  });

  it("checks ports, resources, labels and stop against the policy", () => {
    const ports = [
      { name: "game", protocol: "tcp", hostPort: 30000 },
      { name: "game", protocol: "udp", hostPort: 30000 },
      { name: "Query", protocol: "sctp", hostPort: 0 },
    ];
    const error = refusal(spec({ ports }));
    expect(error.code).toBe("VALIDATION_FAILED");
    expect(error.issues.map((issue) => issue.path)).toEqual([
      "ports[1].name",
      "ports[2].name",
      "ports[2].protocol",
      "ports[2].hostPort",
    ]);
    expect(refusal(spec(), { ...policy, hostPortRange: { from: 30000, to: 31000 } }).code).toBe(
      "FORBIDDEN",
    );
    expect(refusal(spec(), { ...policy, maxMemoryMb: 512 }).code).toBe("FORBIDDEN");
    expect(refusal(spec({ resources: { memoryMb: 0, cpu: 1, diskMb: 0 } })).code).toBe(
      "VALIDATION_FAILED",
    );
    expect(refusal(spec({ labels: { "bad key": "x" } })).code).toBe("VALIDATION_FAILED");
    expect(
      refusal(spec({ stop: { input: "stop\nrm -rf /", signal: "SIGTERM", timeoutSeconds: 1 } }))
        .code,
    ).toBe("VALIDATION_FAILED");
    expect(
      refusal(spec({ stop: { input: null, signal: "SIGKILL", timeoutSeconds: 1 } })).code,
    ).toBe("VALIDATION_FAILED");
  });

  it("reports every issue at once", () => {
    const error = refusal({ instanceId: 3, command: "x", env: [], extra: 1 });
    expect(error.code).toBe("FORBIDDEN");
    expect(error.issues.length).toBeGreaterThan(5);
    expect(refusal(null).code).toBe("VALIDATION_FAILED");
  });
});

describe("resolveInstanceDirectory", () => {
  let base: string;
  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), "orch-policy-"));
    await mkdir(join(base, "instances", "a"), { recursive: true });
    await mkdir(join(base, "outside"));
    await symlink(join(base, "outside"), join(base, "instances", "escape"));
    await writeFile(join(base, "instances", "file"), "x");
  });
  afterAll(() => rm(base, { recursive: true, force: true }));

  it("returns the real path of a directory beneath the roots", async () => {
    const policy = { instanceRoots: [join(base, "instances")] };
    await expect(resolveInstanceDirectory(join(base, "instances", "a"), policy)).resolves.toBe(
      join(base, "instances", "a"),
    );
  });

  it("refuses a symlink that leads out, a file and a missing directory", async () => {
    const policy = { instanceRoots: [join(base, "instances")] };
    await expect(
      resolveInstanceDirectory(join(base, "instances", "escape"), policy),
    ).rejects.toMatchObject({ code: "FORBIDDEN" });
    await expect(
      resolveInstanceDirectory(join(base, "instances", "file"), policy),
    ).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    await expect(
      resolveInstanceDirectory(join(base, "instances", "nope"), policy),
    ).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
  });
});
