/**
 * Who is calling: a user (through a panel session or an API token) or a node
 * (through its node credential, on the agent routes only).
 */
import type { Actor, Node, Role, User } from "@orchestrator/core";
import { ForbiddenError, roleAtLeast } from "@orchestrator/core";

export type Principal =
  | {
      kind: "user";
      user: User;
      via: "session";
      sessionId: string;
      csrfToken: string;
      /** True when the session secret came as a bearer header (not an ambient cookie). */
      csrfExempt: boolean;
    }
  | { kind: "user"; user: User; via: "token"; tokenId: string; scopes: readonly string[] }
  | { kind: "node"; nodeId: string; node: Node };

/** API areas that token scopes name (`instances:read`, `nodes:write`, ...). */
export const SCOPE_AREAS = [
  "templates",
  "instances",
  "nodes",
  "users",
  "tokens",
  "audit",
  "events",
] as const;
export type ScopeArea = (typeof SCOPE_AREAS)[number];
export const TOKEN_SCOPES: readonly string[] = SCOPE_AREAS.flatMap((area) => [
  `${area}:read`,
  `${area}:write`,
]);

export function actorOf(principal: Principal): Actor {
  return principal.kind === "node"
    ? { kind: "node", id: principal.nodeId }
    : { kind: "user", id: principal.user.id };
}

/**
 * Throws FORBIDDEN unless a user principal has `role` (or better) and, for a
 * scoped token, the scope `area:access`.
 */
export function requireRole(
  principal: Principal,
  role: Role,
  area: ScopeArea,
  access: "read" | "write",
): void {
  if (principal.kind !== "user") throw new ForbiddenError("this route is for users, not nodes");
  if (!roleAtLeast(principal.user.role, role)) {
    throw new ForbiddenError(`requires the ${role} role`, { details: { required: role } });
  }
  if (
    principal.via === "token" &&
    principal.scopes.length > 0 &&
    !principal.scopes.includes(`${area}:${access}`)
  ) {
    throw new ForbiddenError(`token lacks the ${area}:${access} scope`, {
      details: { scope: `${area}:${access}` },
    });
  }
}
