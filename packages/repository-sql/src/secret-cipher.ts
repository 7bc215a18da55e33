/**
 * Secret variable values can't be hashed (the node needs them to fill in the
 * template), so they are kept apart from the other variables, never returned
 * by listings, and encrypted at rest (AES-256-GCM, bound to their row) when a
 * secret key is configured.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { OrchestratorError, ValidationError } from "@orchestrator/core";

/** Seals and opens secret values; `context` (the row id) binds a value to its row. */
export interface SecretCipher {
  /** True when values are encrypted at rest. */
  readonly encrypts: boolean;
  seal(plain: string, context: string): string;
  open(stored: string, context: string): string;
}

const PREFIX = "aes256gcm.";

/** Stores values as they are (no secret key configured). Opens sealed values only to refuse them. */
export const PLAINTEXT_CIPHER: SecretCipher = {
  encrypts: false,
  seal: (plain) => plain,
  open: (stored) => {
    if (stored.startsWith(PREFIX)) {
      throw new OrchestratorError(
        "INTERNAL",
        "secret values are encrypted but no secret key is configured",
      );
    }
    return stored;
  },
};

/**
 * AES-256-GCM with a key derived (HKDF-SHA256) from `secret`, which must have
 * at least 32 characters (or bytes) of entropy, e.g. `openssl rand -base64 32`.
 * Values written before a key was configured are still read.
 */
export function createSecretCipher(secret: string | Uint8Array): SecretCipher {
  const material = typeof secret === "string" ? Buffer.from(secret, "utf8") : Buffer.from(secret);
  if (material.length < 32) {
    throw new ValidationError([
      { path: "secretKey", message: "must be at least 32 characters (or bytes) long" },
    ]);
  }
  const key = Buffer.from(
    hkdfSync("sha256", material, "orchestrator", "repository-sql/secret-variables/v1", 32),
  );
  return {
    encrypts: true,
    seal(plain, context) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      cipher.setAAD(Buffer.from(context, "utf8"));
      const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
      const tag = cipher.getAuthTag();
      return `${PREFIX}${iv.toString("base64url")}.${tag.toString("base64url")}.${body.toString("base64url")}`;
    },
    open(stored, context) {
      if (!stored.startsWith(PREFIX)) return stored;
      const [iv, tag, body] = stored.slice(PREFIX.length).split(".");
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv ?? "", "base64url"));
        decipher.setAAD(Buffer.from(context, "utf8"));
        decipher.setAuthTag(Buffer.from(tag ?? "", "base64url"));
        return Buffer.concat([
          decipher.update(Buffer.from(body ?? "", "base64url")),
          decipher.final(),
        ]).toString("utf8");
      } catch (error) {
        throw new OrchestratorError(
          "INTERNAL",
          "cannot decrypt secret values (wrong secret key, or the data was altered)",
          { cause: error },
        );
      }
    },
  };
}
