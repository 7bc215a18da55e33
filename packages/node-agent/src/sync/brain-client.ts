/**
 * The agent's only connection: outbound HTTP calls to the Brain (works behind
 * NAT). Failures are classified once: network errors, timeouts and 5xx are
 * UNAVAILABLE (retry with backoff); 401/403 mean the credential was revoked.
 */
import {
  AGENT_JOIN_PATH,
  AGENT_SYNC_PATH,
  type ErrorCode,
  type JoinRequest,
  type JoinResponse,
  OrchestratorError,
  type SyncRequest,
  type SyncResponse,
  UnavailableError,
} from "@orchestrator/core";

export interface BrainClientOptions {
  brainUrl: string;
  /** Injected for tests; global fetch by default. */
  fetch?: typeof fetch;
  /** Upper bound of one call (a parked sync answers before this). */
  timeoutMs?: number;
}

export class BrainClient {
  private readonly fetch: typeof fetch;
  private credential: string | null = null;

  constructor(private readonly options: BrainClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  setCredential(credential: string): void {
    this.credential = credential;
  }

  join(request: JoinRequest, signal?: AbortSignal): Promise<JoinResponse> {
    return this.post<JoinResponse>(AGENT_JOIN_PATH, request, signal, false);
  }

  sync(request: SyncRequest, signal?: AbortSignal): Promise<SyncResponse> {
    return this.post<SyncResponse>(AGENT_SYNC_PATH, request, signal, true);
  }

  private async post<T>(
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
    authenticated: boolean,
  ): Promise<T> {
    const timeout = AbortSignal.timeout(this.options.timeoutMs ?? 60_000);
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (authenticated) {
      if (!this.credential)
        throw new OrchestratorError("UNAUTHORIZED", "agent has no node credential yet");
      headers.authorization = `Bearer ${this.credential}`;
    }
    let response: Response;
    try {
      response = await this.fetch(new URL(path, this.options.brainUrl), {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new UnavailableError(`brain unreachable at ${this.options.brainUrl}`, { cause: error });
    }
    const text = await response.text();
    if (response.ok) return JSON.parse(text) as T;
    let parsed: { error?: { code?: string; message?: string; details?: Record<string, unknown> } } =
      {};
    try {
      parsed = JSON.parse(text);
    } catch {
      // not our error shape (a proxy's page): classified by status below
    }
    const message = parsed.error?.message ?? `brain answered ${response.status}`;
    if (response.status >= 500 || response.status === 429) {
      throw new UnavailableError(message, { details: { status: response.status } });
    }
    const code = (parsed.error?.code ??
      (response.status === 401 ? "UNAUTHORIZED" : "INTERNAL")) as ErrorCode;
    throw new OrchestratorError(code, message, {
      details: { status: response.status, ...parsed.error?.details },
    });
  }
}
