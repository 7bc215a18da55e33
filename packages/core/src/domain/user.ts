/** Roles, from most to least powerful. */
export const ROLES = ["admin", "operator", "viewer"] as const;
export type Role = (typeof ROLES)[number];

export interface User {
  id: string;
  username: string;
  role: Role;
  disabled: boolean;
  createdAt: Date;
}

/** An API token; only its hash is stored, the secret is shown once. */
export interface ApiToken {
  id: string;
  userId: string;
  name: string;
  /** Scopes narrow the user's role (e.g. `instances:read`); empty = the role's rights. */
  scopes: readonly string[];
  createdAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
}

/** Does `role` include the rights of `required`? */
export function roleAtLeast(role: Role, required: Role): boolean {
  return ROLES.indexOf(role) <= ROLES.indexOf(required);
}
