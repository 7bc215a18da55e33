/**
 * Resolves the caller of every request (bearer API token, node credential, or
 * panel session cookie) and enforces CSRF for cookie-authenticated mutations.
 * Authorization (roles, scopes) is checked by each route with `requireUser`.
 */
import {
  ForbiddenError,
  type Node,
  OrchestratorError,
  type Role,
  UnauthorizedError,
} from "@orchestrator/core";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { safeEqual } from "../auth/secret-tokens.js";
import type { AuthService } from "../services/auth-service.js";
import { type Principal, requireRole, type ScopeArea } from "../services/principal.js";

export const SESSION_COOKIE = "orch_session";
export const CSRF_HEADER = "x-csrf-token";

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** Who authenticates requests (live streams ask it again while they run). */
    orchestratorAuth: AuthService;
  }
}

/** How often a live stream's credential is checked again. */
const RECHECK_MS = 3_000;

/** The credentials a request carries: a bearer secret and/or the panel's session cookie. */
function credentialsOf(request: FastifyRequest): {
  bearer: string | null;
  sessionCookie: string | null;
} {
  const header = request.headers.authorization;
  return {
    bearer: header?.startsWith("Bearer ") ? header.slice("Bearer ".length).trim() : null,
    sessionCookie: request.cookies?.[SESSION_COOKIE] ?? null,
  };
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export function registerAuthentication(app: FastifyInstance, auth: AuthService): void {
  app.decorateRequest("principal", null);
  app.decorate("orchestratorAuth", auth);
  app.addHook("onRequest", async (request) => {
    const { bearer, sessionCookie } = credentialsOf(request);
    if (!bearer && !sessionCookie) return;
    request.principal = await auth.authenticate({ bearer, sessionCookie });
    if (bearer && !request.principal) throw new UnauthorizedError("invalid or expired credentials");
    const principal = request.principal;
    if (
      principal?.kind === "user" &&
      principal.via === "session" &&
      !principal.csrfExempt &&
      !SAFE_METHODS.has(request.method)
    ) {
      const sent = request.headers[CSRF_HEADER];
      if (typeof sent !== "string" || !safeEqual(sent, principal.csrfToken)) {
        throw new ForbiddenError("missing or wrong CSRF token", {
          details: { header: CSRF_HEADER },
        });
      }
    }
  });
}

/** The calling user, with at least `role` (and the token scope `area:access`). */
export function requireUser(
  request: FastifyRequest,
  role: Role,
  area: ScopeArea,
  access: "read" | "write",
): Extract<Principal, { kind: "user" }> {
  const principal = request.principal;
  if (!principal) throw new UnauthorizedError();
  requireRole(principal, role, area, access);
  return principal as Extract<Principal, { kind: "user" }>;
}

/**
 * Calls `onLost` once the request's credential no longer gives `role` (and
 * the scope `area:read`): asked again every few seconds, for what is not
 * announced in this process (a token revoked on another Brain replica, an
 * expired session, a role taken away). A store that cannot answer right now
 * ends nothing. Returns the function that stops checking.
 */
export function recheckCredential(
  request: FastifyRequest,
  role: Role,
  area: ScopeArea,
  onLost: () => void,
): () => void {
  const credentials = credentialsOf(request);
  let checking = false;
  let lost = false;
  const timer = setInterval(async () => {
    if (checking || lost) return;
    checking = true;
    try {
      const principal = await request.server.orchestratorAuth.authenticate(credentials);
      if (principal?.kind === "user") requireRole(principal, role, area, "read");
      else lost = true;
    } catch (error) {
      lost = OrchestratorError.hasCode(error, "FORBIDDEN");
    } finally {
      checking = false;
    }
    if (lost) {
      clearInterval(timer);
      onLost();
    }
  }, RECHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** The calling node, as authentication read it (agent routes only). */
export function requireNode(request: FastifyRequest): Node {
  const principal = request.principal;
  if (!principal) throw new UnauthorizedError();
  if (principal.kind !== "node") throw new ForbiddenError("agent routes take a node credential");
  return principal.node;
}
