/**
 * The Brain's configuration: one schema, read from an optional JSON file and
 * `ORCH_*` environment variables (the environment wins), validated at start with
 * every problem listed at once.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ValidationError, type ValidationIssue } from "@orchestrator/core";

export interface WebhookConfig {
  url: string;
  /** HMAC-SHA256 key for the `X-Orchestrator-Signature` header. */
  secret: string;
  /** Event kinds sent (`instance.failed`, `instance.lost`, `node.offline`, `node.online`); all when empty. */
  events: string[];
}

export interface BrainConfig {
  host: string;
  port: number;
  /** Where the embedded SQLite database and other state live. */
  dataDir: string;
  /** `sqlite:<path>`, `sqlite::memory:` or `mysql://user:pass@host:port/db`. */
  databaseUrl: string;
  /** Password of the first admin; generated and printed once when absent. */
  adminPassword: string | null;
  /** How often agents sync (sent to them at join). */
  heartbeatIntervalMs: number;
  /** Silence after which a node is OFFLINE (Brain's monotonic clock). */
  offlineAfterMs: number;
  /**
   * How long a sync with nothing to say is parked (long-poll). At most half the
   * offline timeout: each sync is a heartbeat.
   */
  syncWaitMs: number;
  /** If more than this fraction of nodes go silent at once, the Brain suspects itself. */
  massSilenceFraction: number;
  /** Session cookie lifetime. */
  sessionTtlMs: number;
  /** Largest accepted request body. */
  bodyLimitBytes: number;
  /** Login attempts allowed per account and per IP within `loginWindowMs`. */
  loginMaxAttempts: number;
  loginWindowMs: number;
  /** Set the cookie's Secure flag (behind HTTPS). */
  secureCookies: boolean;
  /** Trust X-Forwarded-* from a reverse proxy. */
  trustProxy: boolean;
  /** A built panel (static files) served at `/`; none when null. */
  panelDir: string | null;
  webhooks: WebhookConfig[];
}

export const DEFAULT_BRAIN_CONFIG: Omit<BrainConfig, "databaseUrl"> = {
  host: "127.0.0.1",
  port: 8080,
  dataDir: "./.orchestrator",
  adminPassword: null,
  heartbeatIntervalMs: 5_000,
  offlineAfterMs: 15_000,
  syncWaitMs: 5_000,
  massSilenceFraction: 0.5,
  sessionTtlMs: 12 * 60 * 60 * 1000,
  bodyLimitBytes: 1024 * 1024,
  loginMaxAttempts: 10,
  loginWindowMs: 15 * 60 * 1000,
  secureCookies: false,
  trustProxy: false,
  panelDir: null,
  webhooks: [],
};

type Kind = "string" | "int" | "number" | "boolean" | "json";

/** Every setting: its environment variable and how to read it. */
const FIELDS: Record<keyof BrainConfig, { env: string; kind: Kind; min?: number; max?: number }> = {
  host: { env: "ORCH_HOST", kind: "string" },
  port: { env: "ORCH_PORT", kind: "int", min: 0, max: 65535 },
  dataDir: { env: "ORCH_DATA_DIR", kind: "string" },
  databaseUrl: { env: "ORCH_DATABASE_URL", kind: "string" },
  adminPassword: { env: "ORCH_ADMIN_PASSWORD", kind: "string" },
  heartbeatIntervalMs: { env: "ORCH_HEARTBEAT_INTERVAL_MS", kind: "int", min: 100, max: 600_000 },
  offlineAfterMs: { env: "ORCH_OFFLINE_AFTER_MS", kind: "int", min: 300, max: 3_600_000 },
  syncWaitMs: { env: "ORCH_SYNC_WAIT_MS", kind: "int", min: 0, max: 120_000 },
  massSilenceFraction: { env: "ORCH_MASS_SILENCE_FRACTION", kind: "number", min: 0, max: 1 },
  sessionTtlMs: { env: "ORCH_SESSION_TTL_MS", kind: "int", min: 60_000, max: 30 * 86_400_000 },
  bodyLimitBytes: { env: "ORCH_BODY_LIMIT_BYTES", kind: "int", min: 1024, max: 64 * 1024 * 1024 },
  loginMaxAttempts: { env: "ORCH_LOGIN_MAX_ATTEMPTS", kind: "int", min: 1, max: 10_000 },
  loginWindowMs: { env: "ORCH_LOGIN_WINDOW_MS", kind: "int", min: 1000, max: 86_400_000 },
  secureCookies: { env: "ORCH_SECURE_COOKIES", kind: "boolean" },
  trustProxy: { env: "ORCH_TRUST_PROXY", kind: "boolean" },
  panelDir: { env: "ORCH_PANEL_DIR", kind: "string" },
  webhooks: { env: "ORCH_WEBHOOKS", kind: "json" },
};

/** The environment variables the Brain reads, for `--help` and the README. */
export const BRAIN_ENV_VARS: readonly string[] = Object.values(FIELDS).map((field) => field.env);

function read(
  key: keyof BrainConfig,
  raw: unknown,
  source: string,
  issues: ValidationIssue[],
): unknown {
  const field = FIELDS[key];
  const path = `${source}`;
  const fromEnv = typeof raw === "string" && source.startsWith("ORCH_");
  switch (field.kind) {
    case "string":
      if (typeof raw !== "string" || raw.length === 0) {
        issues.push({ path, message: "must be a non-empty string" });
        return undefined;
      }
      return raw;
    case "int":
    case "number": {
      const value = fromEnv ? Number(raw) : raw;
      if (typeof value !== "number" || !Number.isFinite(value)) {
        issues.push({ path, message: `must be a number, got ${JSON.stringify(raw)}` });
        return undefined;
      }
      if (field.kind === "int" && !Number.isInteger(value)) {
        issues.push({ path, message: `must be a whole number, got ${value}` });
        return undefined;
      }
      if (
        (field.min !== undefined && value < field.min) ||
        (field.max !== undefined && value > field.max)
      ) {
        issues.push({
          path,
          message: `must be between ${field.min} and ${field.max}, got ${value}`,
        });
        return undefined;
      }
      return value;
    }
    case "boolean": {
      if (typeof raw === "boolean") return raw;
      if (fromEnv && ["true", "1", "yes"].includes(String(raw).toLowerCase())) return true;
      if (fromEnv && ["false", "0", "no"].includes(String(raw).toLowerCase())) return false;
      issues.push({ path, message: `must be true or false, got ${JSON.stringify(raw)}` });
      return undefined;
    }
    case "json": {
      let value = raw;
      if (fromEnv) {
        try {
          value = JSON.parse(String(raw));
        } catch {
          issues.push({ path, message: "must be JSON" });
          return undefined;
        }
      }
      return value;
    }
  }
}

function validateWebhooks(value: unknown, issues: ValidationIssue[]): WebhookConfig[] {
  if (!Array.isArray(value)) {
    issues.push({ path: "webhooks", message: "must be a list of { url, secret, events }" });
    return [];
  }
  return value.flatMap((hook, index) => {
    const path = `webhooks[${index}]`;
    if (typeof hook !== "object" || hook === null) {
      issues.push({ path, message: "must be an object" });
      return [];
    }
    const { url, secret, events = [] } = hook as Record<string, unknown>;
    let parsed: URL | null = null;
    try {
      parsed = typeof url === "string" ? new URL(url) : null;
    } catch {
      parsed = null;
    }
    if (!parsed || !["http:", "https:"].includes(parsed.protocol)) {
      issues.push({ path: `${path}.url`, message: "must be an http(s) URL" });
    }
    if (typeof secret !== "string" || secret.length < 16) {
      issues.push({
        path: `${path}.secret`,
        message: "must be a string of at least 16 characters",
      });
    }
    if (!Array.isArray(events) || events.some((event) => typeof event !== "string")) {
      issues.push({ path: `${path}.events`, message: "must be a list of event names" });
    }
    return [{ url: String(url), secret: String(secret), events: (events as string[]) ?? [] }];
  });
}

/**
 * Builds the configuration from defaults, an optional JSON file (`ORCH_CONFIG`
 * or `file`) and the environment. Throws `ValidationError` listing every problem.
 */
export function loadBrainConfig(
  options: { env?: NodeJS.ProcessEnv; file?: string; overrides?: Partial<BrainConfig> } = {},
): BrainConfig {
  const env = options.env ?? process.env;
  const issues: ValidationIssue[] = [];
  let fileValues: Record<string, unknown> = {};
  const file = options.file ?? env.ORCH_CONFIG;
  if (file) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        issues.push({ path: file, message: "must hold a JSON object" });
      } else fileValues = parsed as Record<string, unknown>;
    } catch (error) {
      issues.push({ path: file, message: `cannot read: ${(error as Error).message}` });
    }
  }
  for (const key of Object.keys(fileValues)) {
    if (!(key in FIELDS)) issues.push({ path: `${file}: ${key}`, message: "unknown setting" });
  }

  const values: Record<string, unknown> = { ...DEFAULT_BRAIN_CONFIG };
  for (const key of Object.keys(FIELDS) as (keyof BrainConfig)[]) {
    const envValue = env[FIELDS[key].env];
    if (envValue !== undefined && envValue !== "") {
      values[key] = read(key, envValue, FIELDS[key].env, issues);
    } else if (key in fileValues && fileValues[key] !== null) {
      values[key] = read(key, fileValues[key], `${file}: ${key}`, issues);
    }
  }
  Object.assign(values, options.overrides);
  values.webhooks = validateWebhooks(values.webhooks, issues);
  if (typeof values.dataDir === "string") values.dataDir = resolve(values.dataDir);
  if (values.databaseUrl === undefined) {
    values.databaseUrl = `sqlite:${resolve(String(values.dataDir), "brain.db")}`;
  } else if (
    typeof values.databaseUrl === "string" &&
    !/^(sqlite:.+|mysql:\/\/.+)$/.test(values.databaseUrl)
  ) {
    issues.push({
      path: FIELDS.databaseUrl.env,
      message: "must be sqlite:<path>, sqlite::memory: or mysql://user:password@host:port/database",
    });
  }
  if (
    typeof values.offlineAfterMs === "number" &&
    typeof values.heartbeatIntervalMs === "number" &&
    values.offlineAfterMs < 2 * values.heartbeatIntervalMs
  ) {
    issues.push({
      path: FIELDS.offlineAfterMs.env,
      message: `must be at least twice the heartbeat interval (${values.heartbeatIntervalMs} ms)`,
    });
  }
  if (
    typeof values.syncWaitMs === "number" &&
    typeof values.offlineAfterMs === "number" &&
    values.syncWaitMs > values.offlineAfterMs / 2
  ) {
    issues.push({
      path: FIELDS.syncWaitMs.env,
      message: `must be at most half the offline timeout (${values.offlineAfterMs} ms): every sync is a heartbeat`,
    });
  }
  if (issues.length > 0) throw new ValidationError(issues);
  return values as unknown as BrainConfig;
}
