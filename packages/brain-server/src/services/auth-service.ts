/**
 * Users, panel sessions, API tokens and the first admin. Passwords are scrypt
 * hashes compared in constant time; secrets are stored as SHA-256 hashes; a
 * login costs the same whether the account exists or not.
 */
import { randomBytes } from "node:crypto";
import {
  type ApiToken,
  type Clock,
  ConflictError,
  ForbiddenError,
  type IdGenerator,
  NotFoundError,
  type Repositories,
  ROLES,
  type Role,
  UnauthorizedError,
  type User,
  ValidationError,
} from "@orchestrator/core";
import type { LoginRateLimiter } from "../auth/login-rate-limiter.js";
import { dummyPasswordHash, hashPassword, verifyPassword } from "../auth/password-hasher.js";
import { generateSecret, hashSecret, secretKind } from "../auth/secret-tokens.js";
import type { BrainConfig } from "../config/brain-config.js";
import type { LiveEvents } from "./live-events.js";
import { type Principal, TOKEN_SCOPES } from "./principal.js";

export const MIN_PASSWORD_LENGTH = 10;
const TOKEN_TOUCH_INTERVAL_MS = 60_000;
/**
 * How long a verified API token is trusted without reading it again. Changes
 * made through this Brain (token deleted, user disabled, deleted, demoted)
 * drop the cached entries at once; a change made through another Brain
 * replica is seen within this time.
 */
export const TOKEN_CACHE_TTL_MS = 1_000;
const TOKEN_CACHE_MAX_ENTRIES = 10_000;
const USERNAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{1,63}$/;

/** The CSRF token of a session: derived from its secret, so nothing more is stored. */
export function csrfTokenFor(sessionSecret: string): string {
  return hashSecret(`csrf:${sessionSecret}`).slice(0, 43);
}

export interface LoginResult {
  user: User;
  sessionSecret: string;
  csrfToken: string;
  expiresAt: Date;
}

type TokenPrincipal = Extract<Principal, { via: "token" }>;

export class AuthService {
  /** Verified API tokens by secret hash: one database read per token and second, not per request. */
  private readonly tokenCache = new Map<string, { principal: TokenPrincipal; until: number }>();
  private tokenCacheGeneration = 0;

  constructor(
    private readonly repositories: Repositories,
    private readonly clock: Clock,
    private readonly ids: IdGenerator,
    private readonly config: BrainConfig,
    private readonly limiter: LoginRateLimiter,
    private readonly live: LiveEvents,
  ) {}

  /** Creates the first admin when no user exists; returns a generated password to print once. */
  async ensureAdmin(): Promise<{ username: string; password: string | null } | null> {
    if ((await this.repositories.users.count()) > 0) return null;
    const generated = this.config.adminPassword === null;
    const password = this.config.adminPassword ?? randomBytes(12).toString("base64url");
    try {
      await this.repositories.users.create(
        { id: this.ids.next("usr"), username: "admin", role: "admin", disabled: false },
        await hashPassword(password),
        this.clock.now(),
      );
    } catch (error) {
      if (error instanceof ConflictError) return null; // another Brain replica created it first
      throw error;
    }
    return { username: "admin", password: generated ? password : null };
  }

  async login(
    username: string,
    password: string,
    ip: string,
    userAgent: string | null,
  ): Promise<LoginResult> {
    this.limiter.check(username, ip);
    const found = await this.repositories.users.findByUsername(username);
    // Verify against a dummy hash for unknown users: same cost, no user enumeration.
    const valid = await verifyPassword(
      password,
      found?.passwordHash ?? (await dummyPasswordHash()),
    );
    if (!found || !valid || found.disabled) {
      this.limiter.recordFailure(username, ip);
      throw new UnauthorizedError("wrong username or password");
    }
    this.limiter.recordSuccess(username);
    const sessionSecret = generateSecret("session");
    const now = this.clock.now();
    const expiresAt = new Date(now.getTime() + this.config.sessionTtlMs);
    await this.repositories.sessions.create(
      { id: this.ids.next("ses"), userId: found.id, createdAt: now, expiresAt, ip, userAgent },
      hashSecret(sessionSecret),
    );
    const { passwordHash: _, ...user } = found;
    return { user, sessionSecret, csrfToken: csrfTokenFor(sessionSecret), expiresAt };
  }

  async logout(principal: Principal): Promise<void> {
    if (principal.kind === "user" && principal.via === "session") {
      await this.repositories.sessions.delete(principal.sessionId);
      this.live.revoke({ sessionId: principal.sessionId });
    }
  }

  /** The principal behind a bearer secret or a session cookie; null when unknown, expired or disabled. */
  async authenticate(credentials: {
    bearer?: string | null;
    sessionCookie?: string | null;
  }): Promise<Principal | null> {
    const now = this.clock.now();
    const bearer = credentials.bearer ?? null;
    if (bearer) {
      const kind = secretKind(bearer);
      if (kind === "apiToken") return this.tokenPrincipal(bearer, now);
      // The session secret from a login works as a bearer token too (scripts, the CLI).
      if (kind === "session") return this.sessionPrincipal(bearer, now, "bearer");
      if (kind === "nodeCredential") {
        const node = await this.repositories.nodes.findByCredentialHash(hashSecret(bearer));
        return node ? { kind: "node", nodeId: node.id, node } : null;
      }
      return null;
    }
    const cookie = credentials.sessionCookie ?? null;
    if (cookie && secretKind(cookie) === "session")
      return this.sessionPrincipal(cookie, now, "cookie");
    return null;
  }

  private async tokenPrincipal(secret: string, now: Date): Promise<TokenPrincipal | null> {
    const hash = hashSecret(secret);
    const nowMs = now.getTime();
    const cached = this.tokenCache.get(hash);
    if (cached && cached.until > nowMs) return cached.principal;
    this.tokenCache.delete(hash);
    const generation = this.tokenCacheGeneration;
    const found = await this.repositories.tokens.findBySecretHash(hash, now);
    if (!found || found.user.disabled) return null;
    // "Last used" is for people: refreshed at most once a minute, not one write per request.
    const lastUsed = found.token.lastUsedAt?.getTime() ?? 0;
    if (nowMs - lastUsed >= TOKEN_TOUCH_INTERVAL_MS) {
      await this.repositories.tokens.touch(found.token.id, now);
    }
    const principal: TokenPrincipal = {
      kind: "user",
      user: found.user,
      via: "token",
      tokenId: found.token.id,
      scopes: found.token.scopes,
    };
    // A revocation that happened while this read was on its way must not be undone by caching it.
    if (generation !== this.tokenCacheGeneration) return principal;
    const expires = found.token.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY;
    if (this.tokenCache.size >= TOKEN_CACHE_MAX_ENTRIES) {
      const oldest = this.tokenCache.keys().next().value;
      if (oldest !== undefined) this.tokenCache.delete(oldest);
    }
    this.tokenCache.set(hash, { principal, until: Math.min(nowMs + TOKEN_CACHE_TTL_MS, expires) });
    return principal;
  }

  /** Drops cached tokens (of one token or of one user's) after a change that revokes access. */
  private forgetTokens(match: { tokenId?: string; userId?: string }): void {
    this.tokenCacheGeneration += 1;
    for (const [hash, { principal }] of this.tokenCache) {
      if (principal.tokenId === match.tokenId || principal.user.id === match.userId) {
        this.tokenCache.delete(hash);
      }
    }
  }

  private async sessionPrincipal(
    secret: string,
    now: Date,
    carrier: "cookie" | "bearer",
  ): Promise<Principal | null> {
    const found = await this.repositories.sessions.findBySecretHash(hashSecret(secret), now);
    if (!found || found.user.disabled) return null;
    return {
      kind: "user",
      user: found.user,
      via: "session",
      sessionId: found.session.id,
      csrfToken: csrfTokenFor(secret),
      // A bearer header is never sent by a browser on its own: no CSRF check for it.
      csrfExempt: carrier === "bearer",
    };
  }

  // --- API tokens -------------------------------------------------------------

  async createToken(
    owner: User,
    input: { name: string; scopes?: string[]; expiresInDays?: number },
  ): Promise<{ token: ApiToken; secret: string }> {
    const scopes = input.scopes ?? [];
    const unknown = scopes.filter((scope) => !TOKEN_SCOPES.includes(scope));
    if (unknown.length > 0) {
      throw new ValidationError(
        unknown.map((scope) => ({ path: "scopes", message: `unknown scope '${scope}'` })),
      );
    }
    const now = this.clock.now();
    const secret = generateSecret("apiToken");
    const token = await this.repositories.tokens.create(
      {
        id: this.ids.next("tok"),
        userId: owner.id,
        name: input.name,
        scopes,
        createdAt: now,
        expiresAt: input.expiresInDays
          ? new Date(now.getTime() + input.expiresInDays * 86_400_000)
          : null,
      },
      hashSecret(secret),
    );
    return { token, secret };
  }

  listTokens(user: User): Promise<ApiToken[]> {
    return this.repositories.tokens.listForUser(user.id);
  }

  /** Deletes a token of one's own (admins: anyone's) and ends its live streams. */
  async deleteToken(actor: User, tokenId: string): Promise<ApiToken> {
    const token = await this.repositories.tokens.get(tokenId);
    if (!token || (token.userId !== actor.id && actor.role !== "admin"))
      throw new NotFoundError("token", tokenId);
    await this.repositories.tokens.delete(tokenId);
    this.forgetTokens({ tokenId });
    this.live.revoke({ tokenId });
    return token;
  }

  // --- users -----------------------------------------------------------------

  listUsers(): Promise<User[]> {
    return this.repositories.users.list();
  }

  async getUser(id: string): Promise<User> {
    const user = await this.repositories.users.get(id);
    if (!user) throw new NotFoundError("user", id);
    return user;
  }

  async createUser(input: { username: string; password: string; role: Role }): Promise<User> {
    this.checkUserInput(input);
    return this.repositories.users.create(
      { id: this.ids.next("usr"), username: input.username, role: input.role, disabled: false },
      await hashPassword(input.password),
      this.clock.now(),
    );
  }

  async updateUser(
    actor: User,
    id: string,
    changes: { role?: Role; disabled?: boolean; password?: string },
  ): Promise<User> {
    this.checkUserInput(changes);
    if (id === actor.id && (changes.disabled || (changes.role && changes.role !== "admin"))) {
      throw new ForbiddenError("admins cannot disable or demote themselves");
    }
    const user = await this.repositories.users.update(id, {
      ...(changes.role ? { role: changes.role } : {}),
      ...(changes.disabled === undefined ? {} : { disabled: changes.disabled }),
      ...(changes.password ? { passwordHash: await hashPassword(changes.password) } : {}),
    });
    // Cached principals carry the user (role, disabled): read it again.
    this.forgetTokens({ userId: id });
    if (changes.disabled || changes.password || changes.role) {
      // Revocation: a disabled (or re-passworded, or demoted) user's sessions end now.
      await this.repositories.sessions.deleteForUser(id);
      this.live.revoke({ userId: id });
    }
    return user;
  }

  async deleteUser(actor: User, id: string): Promise<void> {
    if (id === actor.id) throw new ForbiddenError("admins cannot delete themselves");
    await this.repositories.users.delete(id);
    this.forgetTokens({ userId: id });
    this.live.revoke({ userId: id });
  }

  private checkUserInput(input: { username?: string; password?: string; role?: Role }): void {
    const issues = [];
    if (input.username !== undefined && !USERNAME.test(input.username)) {
      issues.push({ path: "username", message: "must be 2-64 letters, digits, '.', '_' or '-'" });
    }
    if (input.password !== undefined && input.password.length < MIN_PASSWORD_LENGTH) {
      issues.push({
        path: "password",
        message: `must be at least ${MIN_PASSWORD_LENGTH} characters`,
      });
    }
    if (input.role !== undefined && !ROLES.includes(input.role)) {
      issues.push({ path: "role", message: `must be one of ${ROLES.join(", ")}` });
    }
    if (issues.length > 0) throw new ValidationError(issues);
  }
}
