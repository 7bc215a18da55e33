/**
 * Bearer secrets (API tokens, session ids, node credentials, join tokens).
 * Typed by prefix so a leaked secret says what it is (and secret scanners can
 * match it); only a SHA-256 hash is stored: the secrets have 256 bits of
 * entropy, so a slow hash adds nothing.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export const SECRET_KINDS = {
  apiToken: "orch_pat_",
  session: "orch_ses_",
  nodeCredential: "orch_node_",
  joinToken: "orch_join_",
} as const;

export type SecretKind = keyof typeof SECRET_KINDS;

export function generateSecret(kind: SecretKind): string {
  return `${SECRET_KINDS[kind]}${randomBytes(32).toString("base64url")}`;
}

/** The secret's kind from its prefix, or null when it has none of ours. */
export function secretKind(secret: string): SecretKind | null {
  for (const [kind, prefix] of Object.entries(SECRET_KINDS)) {
    if (secret.startsWith(prefix)) return kind as SecretKind;
  }
  return null;
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** Constant-time string comparison (for CSRF tokens and the like). */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
