import { OrchestratorError, type ValidationError } from "@orchestrator/core";
import { describe, expect, it } from "vitest";
import { loadAgentConfig } from "../src/config/agent-config.js";

describe("loadAgentConfig", () => {
  it("detects capacity and has embedded defaults", () => {
    const config = loadAgentConfig({});
    expect(config.runtime).toBe("process");
    expect(config.storage).toBe("folder");
    expect(config.capacity.memoryMb).toBeGreaterThan(0);
    expect(config.portRange).toEqual({ from: 20000, to: 29999 });
  });

  it("reads labels, capacity, ports and S3 settings", () => {
    const config = loadAgentConfig({
      ORCH_NODE_LABELS: "region=eu, tier=gold",
      ORCH_CAPACITY_MEMORY_MB: "4096",
      ORCH_PORT_RANGE: "30000-30099",
      ORCH_RESERVED_PORTS: "30001,30002",
      ORCH_STORAGE: "s3",
      ORCH_S3_BUCKET: "templates",
      ORCH_S3_FORCE_PATH_STYLE: "true",
      ORCH_ALLOWED_IMAGES: "orchestrator/*, busybox:1",
    });
    expect(config.labels).toEqual({ region: "eu", tier: "gold" });
    expect(config.capacity.memoryMb).toBe(4096);
    expect(config.portRange).toEqual({ from: 30000, to: 30099 });
    expect(config.reservedPorts).toEqual([30001, 30002]);
    expect(config.s3).toMatchObject({ bucket: "templates", forcePathStyle: true });
    expect(config.allowedImages).toEqual(["orchestrator/*", "busybox:1"]);
  });

  it("lists every problem with the variable's name", () => {
    let error: unknown;
    try {
      loadAgentConfig({
        ORCH_BRAIN_URL: "ftp://brain",
        ORCH_RUNTIME: "podman",
        ORCH_PORT_RANGE: "500-100",
        ORCH_NODE_LABELS: "Bad Key=x",
        ORCH_STORAGE: "s3",
        ORCH_CAPACITY_CPU: "-1",
      });
    } catch (caught) {
      error = caught;
    }
    expect(OrchestratorError.hasCode(error, "VALIDATION_FAILED")).toBe(true);
    expect((error as ValidationError).issues.map((issue) => issue.path).sort()).toEqual([
      "ORCH_BRAIN_URL",
      "ORCH_CAPACITY_CPU",
      "ORCH_NODE_LABELS",
      "ORCH_PORT_RANGE",
      "ORCH_RUNTIME",
      "ORCH_S3_BUCKET",
    ]);
  });
});
