import type { FastifyPluginAsync } from "fastify";
import type { BrainConfig } from "../../config/brain-config.js";
import type { AuthService } from "../../services/auth-service.js";
import { actorOf } from "../../services/principal.js";
import { requireUser, SESSION_COOKIE } from "../authentication.js";
import {
  CreateTokenBody,
  CreateUserBody,
  IdParams,
  LoginBody,
  UpdateUserBody,
} from "../schemas.js";

export interface AuthRoutesOptions {
  auth: AuthService;
  config: BrainConfig;
  audit: (entry: {
    actor: ReturnType<typeof actorOf>;
    action: string;
    target: string;
    ip: string;
  }) => Promise<void>;
}

/** /auth, /tokens and /users. */
export const authRoutes: FastifyPluginAsync<AuthRoutesOptions> = async (
  app,
  { auth, config, audit },
) => {
  app.post(
    "/auth/login",
    { schema: { tags: ["auth"], body: LoginBody } },
    async (request, reply) => {
      const { username, password } = request.body as LoginBody;
      const result = await auth.login(
        username,
        password,
        request.ip,
        request.headers["user-agent"] ?? null,
      );
      reply.setCookie(SESSION_COOKIE, result.sessionSecret, {
        httpOnly: true,
        sameSite: "strict",
        secure: config.secureCookies,
        path: "/",
        expires: result.expiresAt,
      });
      await audit({
        actor: { kind: "user", id: result.user.id },
        action: "auth.login",
        target: `user:${result.user.id}`,
        ip: request.ip,
      });
      // The session secret is returned for non-browser clients; browsers use the cookie.
      return {
        user: result.user,
        token: result.sessionSecret,
        csrfToken: result.csrfToken,
        expiresAt: result.expiresAt,
      };
    },
  );

  app.post("/auth/logout", { schema: { tags: ["auth"] } }, async (request, reply) => {
    const principal = requireUser(request, "viewer", "users", "read");
    await auth.logout(principal);
    reply.clearCookie(SESSION_COOKIE, { path: "/" });
    return { ok: true };
  });

  app.get("/auth/me", { schema: { tags: ["auth"] } }, async (request) => {
    const principal = requireUser(request, "viewer", "users", "read");
    return {
      user: principal.user,
      via: principal.via,
      ...(principal.via === "session"
        ? { csrfToken: principal.csrfToken }
        : { scopes: principal.scopes }),
    };
  });

  app.post(
    "/tokens",
    { schema: { tags: ["tokens"], body: CreateTokenBody } },
    async (request, reply) => {
      const principal = requireUser(request, "viewer", "tokens", "write");
      const { token, secret } = await auth.createToken(
        principal.user,
        request.body as CreateTokenBody,
      );
      await audit({
        actor: actorOf(principal),
        action: "token.create",
        target: `token:${token.id}`,
        ip: request.ip,
      });
      reply.status(201);
      return { token, secret };
    },
  );

  app.get("/tokens", { schema: { tags: ["tokens"] } }, async (request) => {
    const principal = requireUser(request, "viewer", "tokens", "read");
    return { items: await auth.listTokens(principal.user) };
  });

  app.delete("/tokens/:id", { schema: { tags: ["tokens"], params: IdParams } }, async (request) => {
    const principal = requireUser(request, "viewer", "tokens", "write");
    const { id } = request.params as { id: string };
    await auth.deleteToken(principal.user, id);
    await audit({
      actor: actorOf(principal),
      action: "token.delete",
      target: `token:${id}`,
      ip: request.ip,
    });
    return { ok: true };
  });

  app.get("/users", { schema: { tags: ["users"] } }, async (request) => {
    requireUser(request, "admin", "users", "read");
    return { items: await auth.listUsers() };
  });

  app.get("/users/:id", { schema: { tags: ["users"], params: IdParams } }, async (request) => {
    requireUser(request, "admin", "users", "read");
    return auth.getUser((request.params as { id: string }).id);
  });

  app.post(
    "/users",
    { schema: { tags: ["users"], body: CreateUserBody } },
    async (request, reply) => {
      const principal = requireUser(request, "admin", "users", "write");
      const user = await auth.createUser(request.body as CreateUserBody);
      await audit({
        actor: actorOf(principal),
        action: "user.create",
        target: `user:${user.id}`,
        ip: request.ip,
      });
      reply.status(201);
      return user;
    },
  );

  app.patch(
    "/users/:id",
    { schema: { tags: ["users"], params: IdParams, body: UpdateUserBody } },
    async (request) => {
      const principal = requireUser(request, "admin", "users", "write");
      const { id } = request.params as { id: string };
      const user = await auth.updateUser(principal.user, id, request.body as UpdateUserBody);
      await audit({
        actor: actorOf(principal),
        action: "user.update",
        target: `user:${id}`,
        ip: request.ip,
      });
      return user;
    },
  );

  app.delete("/users/:id", { schema: { tags: ["users"], params: IdParams } }, async (request) => {
    const principal = requireUser(request, "admin", "users", "write");
    const { id } = request.params as { id: string };
    await auth.deleteUser(principal.user, id);
    await audit({
      actor: actorOf(principal),
      action: "user.delete",
      target: `user:${id}`,
      ip: request.ip,
    });
    return { ok: true };
  });
};
