/**
 * Resolves the caller of every request (bearer API token, node credential, or
 * panel session cookie) and enforces CSRF for cookie-authenticated mutations.
 * Authorization (roles, scopes) is checked by each route with `requireUser`.
 */
import { ForbiddenError, type Node, type Role, UnauthorizedError } from "@orchestrator/core";
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
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export function registerAuthentication(app: FastifyInstance, auth: AuthService): void {
  app.decorateRequest("principal", null);
  app.addHook("onRequest", async (request) => {
    const header = request.headers.authorization;
    const bearer = header?.startsWith("Bearer ") ? header.slice("Bearer ".length).trim() : null;
    const sessionCookie = request.cookies?.[SESSION_COOKIE] ?? null;
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

/** The calling node, as authentication read it (agent routes only). */
export function requireNode(request: FastifyRequest): Node {
  const principal = request.principal;
  if (!principal) throw new UnauthorizedError();
  if (principal.kind !== "node") throw new ForbiddenError("agent routes take a node credential");
  return principal.node;
}
