/** A small client of the Brain API for the CLI (`ORCH_URL`, `ORCH_TOKEN`). */
import {
  type ErrorCode,
  OrchestratorError,
  UnavailableError,
  ValidationError,
} from "@orchestrator/core";

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | null,
  ) {}

  static fromEnv(env: NodeJS.ProcessEnv): ApiClient {
    const url = env.ORCH_URL ?? "http://127.0.0.1:8080";
    try {
      new URL(url);
    } catch {
      throw new ValidationError([
        { path: "ORCH_URL", message: `is not a URL: ${JSON.stringify(url)}` },
      ]);
    }
    return new ApiClient(url, env.ORCH_TOKEN ?? null);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.fetch(method, path, body);
    const text = await response.text();
    const parsed = text
      ? (JSON.parse(text) as T & {
          error?: { code: ErrorCode; message: string; details: Record<string, unknown> };
        })
      : (null as T);
    if (!response.ok) {
      const error = (
        parsed as {
          error?: { code: ErrorCode; message: string; details?: Record<string, unknown> };
        } | null
      )?.error;
      throw new OrchestratorError(
        error?.code ?? "INTERNAL",
        error?.message ?? `the Brain answered ${response.status}`,
        {
          details: error?.details ?? {},
        },
      );
    }
    return parsed;
  }

  /** Logs in and returns the session secret (usable as a bearer token). */
  async login(username: string, password: string): Promise<string> {
    let response: Response;
    try {
      response = await fetch(new URL("/api/v1/auth/login", this.baseUrl), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username, password }),
      });
    } catch (error) {
      throw new UnavailableError(`cannot reach the Brain at ${this.baseUrl}`, { cause: error });
    }
    const body = (await response.json()) as {
      token?: string;
      error?: { code: ErrorCode; message: string };
    };
    if (!response.ok || !body.token) {
      throw new OrchestratorError(
        body.error?.code ?? "UNAUTHORIZED",
        body.error?.message ?? "login failed",
      );
    }
    return body.token;
  }

  /** The raw response (for streams). */
  async fetch(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
  ): Promise<Response> {
    if (!this.token) {
      throw new OrchestratorError(
        "UNAUTHORIZED",
        "set ORCH_TOKEN to an API token (create one in the panel or with POST /api/v1/tokens)",
      );
    }
    try {
      return await fetch(new URL(`/api/v1${path}`, this.baseUrl), {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      throw new UnavailableError(`cannot reach the Brain at ${this.baseUrl}`, { cause: error });
    }
  }
}
