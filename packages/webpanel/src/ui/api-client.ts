/**
 * A small client for the Brain API, used by the panel in the browser. The
 * session is the httpOnly cookie; mutating requests carry the CSRF token from
 * login or `/auth/me`. Failures are `ApiError`s with the API's stable code and
 * its validation issues.
 */
import type { ApiErrorBody, ApiIssue } from "./api-types.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues: readonly ApiIssue[] = [],
  ) {
    super(message);
    this.name = "ApiError";
  }
}

function isErrorBody(value: unknown): value is ApiErrorBody {
  return (
    typeof value === "object" &&
    value !== null &&
    "error" in value &&
    typeof (value as ApiErrorBody).error?.code === "string"
  );
}

function issuesOf(details: Record<string, unknown>): ApiIssue[] {
  const issues = details.issues;
  if (!Array.isArray(issues)) return [];
  return issues.flatMap((issue: unknown) => {
    if (typeof issue !== "object" || issue === null) return [];
    const { path, message } = issue as Record<string, unknown>;
    return typeof path === "string" && typeof message === "string" ? [{ path, message }] : [];
  });
}

export class ApiClient {
  csrfToken: string | null = null;
  /** Called on 401 (the session ended): the panel goes back to the login page. */
  onUnauthorized: (() => void) | null = null;

  constructor(
    private readonly base = "/api/v1",
    private readonly fetcher: typeof fetch = (...args) => fetch(...args),
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (method !== "GET" && this.csrfToken) headers["x-csrf-token"] = this.csrfToken;
    const response = await this.fetcher(`${this.base}${path}`, {
      method,
      headers,
      credentials: "same-origin",
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    let parsed: unknown = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new ApiError(response.status, "INVALID_RESPONSE", "the server answered non-JSON");
      }
    }
    if (!response.ok) {
      if (response.status === 401 && !path.startsWith("/auth/")) this.onUnauthorized?.();
      if (isErrorBody(parsed)) {
        const { code, message, details } = parsed.error;
        throw new ApiError(response.status, code, message, issuesOf(details ?? {}));
      }
      throw new ApiError(response.status, "HTTP_ERROR", `request failed (${response.status})`);
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("POST", path, body ?? {});
  }
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PATCH", path, body);
  }
  delete<T>(path: string): Promise<T> {
    return this.request<T>("DELETE", path);
  }
}
