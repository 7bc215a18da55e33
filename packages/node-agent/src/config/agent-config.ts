/**
 * The agent's configuration, from `ORCH_*` environment variables (and an
 * optional JSON file in `ORCH_AGENT_CONFIG`), validated at start with every
 * problem listed. This is also the agent's local policy: the Brain cannot
 * change any of it remotely.
 */
import { readFileSync } from "node:fs";
import { availableParallelism, hostname, totalmem } from "node:os";
import { resolve } from "node:path";
import {
  type PortRange,
  type Resources,
  ValidationError,
  type ValidationIssue,
} from "@orchestrator/core";

export interface S3StorageConfig {
  endpoint: string | null;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  accessKeyId: string | null;
  secretAccessKey: string | null;
}

export interface AgentConfig {
  brainUrl: string;
  /** One-time token for the first start; unused once a credential is stored. */
  joinToken: string | null;
  name: string;
  /** Credential, report journal, command ledger, cache and instance directories live here. */
  dataDir: string;
  runtime: "process" | "docker";
  storage: "folder" | "s3";
  /** Template folder for folder storage. */
  storageDir: string;
  s3: S3StorageConfig | null;
  labels: Record<string, string>;
  capacity: Resources;
  portRange: PortRange;
  reservedPorts: number[];
  /** Docker images this agent may run (exact names or `prefix/*`). */
  allowedImages: string[];
  /** Template cache size bound. */
  cacheMaxBytes: number;
}

const LABEL = /^[a-z0-9]([a-z0-9._/-]{0,62}[a-z0-9])?$/;

function detectCapacity(): Resources {
  return {
    memoryMb: Math.floor(totalmem() / 2 ** 20),
    cpu: availableParallelism(),
    diskMb: 10_240,
  };
}

export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const issues: ValidationIssue[] = [];
  let file: Record<string, string> = {};
  if (env.ORCH_AGENT_CONFIG) {
    try {
      file = JSON.parse(readFileSync(env.ORCH_AGENT_CONFIG, "utf8"));
    } catch (error) {
      issues.push({
        path: "ORCH_AGENT_CONFIG",
        message: `cannot read: ${(error as Error).message}`,
      });
    }
  }
  const get = (name: string): string | undefined => {
    const value = env[name] ?? file[name];
    return value === undefined || value === "" ? undefined : String(value);
  };
  const number = (name: string, fallback: number, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) {
      issues.push({
        path: name,
        message: `must be a number between ${min} and ${max}, got ${JSON.stringify(raw)}`,
      });
      return fallback;
    }
    return value;
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = get(name) ?? fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      issues.push({
        path: name,
        message: `must be one of ${allowed.join(", ")}, got ${JSON.stringify(raw)}`,
      });
      return fallback;
    }
    return raw as T;
  };

  const brainUrl = get("ORCH_BRAIN_URL") ?? "http://127.0.0.1:8080";
  try {
    const url = new URL(brainUrl);
    if (!["http:", "https:"].includes(url.protocol)) throw new Error("protocol");
  } catch {
    issues.push({
      path: "ORCH_BRAIN_URL",
      message: `must be an http(s) URL, got ${JSON.stringify(brainUrl)}`,
    });
  }

  const labels: Record<string, string> = {};
  for (const pair of (get("ORCH_NODE_LABELS") ?? "").split(",").filter(Boolean)) {
    const [key, value = ""] = pair.split("=", 2).map((part) => part.trim());
    if (!key || !LABEL.test(key) || value.length > 63) {
      issues.push({
        path: "ORCH_NODE_LABELS",
        message: `invalid label '${pair}' (key=value, lower-case key)`,
      });
    } else labels[key] = value;
  }

  const detected = detectCapacity();
  const capacity: Resources = {
    memoryMb: number("ORCH_CAPACITY_MEMORY_MB", detected.memoryMb, 64, 16 * 2 ** 20),
    cpu: number("ORCH_CAPACITY_CPU", detected.cpu, 0.1, 1024),
    diskMb: number("ORCH_CAPACITY_DISK_MB", detected.diskMb, 64, 2 ** 30),
  };

  const rangeText = get("ORCH_PORT_RANGE") ?? "20000-29999";
  const range = /^(\d{1,5})-(\d{1,5})$/.exec(rangeText);
  let portRange: PortRange = { from: 20000, to: 29999 };
  if (
    !range ||
    Number(range[1]) < 1024 ||
    Number(range[2]) > 65535 ||
    Number(range[1]) > Number(range[2])
  ) {
    issues.push({
      path: "ORCH_PORT_RANGE",
      message: `must be FROM-TO within 1024-65535, got ${JSON.stringify(rangeText)}`,
    });
  } else portRange = { from: Number(range[1]), to: Number(range[2]) };

  const reservedPorts = (get("ORCH_RESERVED_PORTS") ?? "").split(",").filter(Boolean).map(Number);
  if (reservedPorts.some((port) => !Number.isInteger(port) || port < 1 || port > 65535)) {
    issues.push({
      path: "ORCH_RESERVED_PORTS",
      message: "must be a comma-separated list of ports",
    });
  }

  const dataDir = resolve(get("ORCH_DATA_DIR") ?? "./.orchestrator/agent");
  const { storage, storageDir, s3 } = readStorageConfig(get, issues);

  const config: AgentConfig = {
    brainUrl,
    joinToken: get("ORCH_JOIN_TOKEN") ?? null,
    name: get("ORCH_NODE_NAME") ?? hostname(),
    dataDir,
    runtime: oneOf("ORCH_RUNTIME", ["process", "docker"] as const, "process"),
    storage,
    storageDir,
    s3,
    labels,
    capacity,
    portRange,
    reservedPorts,
    allowedImages: (get("ORCH_ALLOWED_IMAGES") ?? "")
      .split(",")
      .map((image) => image.trim())
      .filter(Boolean),
    cacheMaxBytes: number("ORCH_CACHE_MAX_MB", 10_240, 16, 2 ** 30) * 2 ** 20,
  };
  if (issues.length > 0) throw new ValidationError(issues);
  return config;
}

/** Where templates come from: `ORCH_STORAGE`, `ORCH_STORAGE_DIR`, `ORCH_S3_*`. */
export type StorageConfig = Pick<AgentConfig, "storage" | "storageDir" | "s3">;

/**
 * The template storage settings alone (the CLI's `template push` reads the
 * same variables). Throws `ValidationError` listing every problem.
 */
export function loadStorageConfig(env: NodeJS.ProcessEnv = process.env): StorageConfig {
  const issues: ValidationIssue[] = [];
  const config = readStorageConfig((name) => env[name] || undefined, issues);
  if (issues.length > 0) throw new ValidationError(issues);
  return config;
}

function readStorageConfig(
  get: (name: string) => string | undefined,
  issues: ValidationIssue[],
): StorageConfig {
  const raw = get("ORCH_STORAGE") ?? "folder";
  if (raw !== "folder" && raw !== "s3") {
    issues.push({
      path: "ORCH_STORAGE",
      message: `must be one of folder, s3, got ${JSON.stringify(raw)}`,
    });
  }
  const storage = raw === "s3" ? "s3" : "folder";
  let s3: S3StorageConfig | null = null;
  if (storage === "s3") {
    const bucket = get("ORCH_S3_BUCKET");
    if (!bucket)
      issues.push({ path: "ORCH_S3_BUCKET", message: "is required with ORCH_STORAGE=s3" });
    s3 = {
      endpoint: get("ORCH_S3_ENDPOINT") ?? null,
      region: get("ORCH_S3_REGION") ?? "us-east-1",
      bucket: bucket ?? "",
      prefix: get("ORCH_S3_PREFIX") ?? "",
      forcePathStyle: (get("ORCH_S3_FORCE_PATH_STYLE") ?? "false") === "true",
      accessKeyId: get("ORCH_S3_ACCESS_KEY_ID") ?? null,
      secretAccessKey: get("ORCH_S3_SECRET_ACCESS_KEY") ?? null,
    };
  }
  return { storage, storageDir: resolve(get("ORCH_STORAGE_DIR") ?? "./templates"), s3 };
}
