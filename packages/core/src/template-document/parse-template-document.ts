/**
 * Parsing and validating `template.json`, and the canonical digest of a
 * definition (to tell whether a push changed anything).
 */
import type { TemplateDefinition } from "../domain/template.js";
import {
  type OrchestratorErrorOptions,
  TemplateInvalidError,
  ValidationError,
  type ValidationIssue,
} from "../errors/orchestrator-error.js";
import { assertTemplateName } from "./names.js";
import { INVALID } from "./schema-builder.js";
import {
  MAX_TEMPLATE_DOCUMENT_BYTES,
  templateDocumentChecker,
} from "./template-document-schema.js";

/** A `template.json` that is not valid: every problem found, at once. */
export class TemplateDocumentError extends TemplateInvalidError {
  readonly issues: readonly ValidationIssue[];

  constructor(issues: readonly ValidationIssue[], options: OrchestratorErrorOptions = {}) {
    const summary = issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ");
    super(`invalid template document: ${summary}`, {
      ...options,
      details: { issues, ...options.details },
    });
    this.name = "TemplateDocumentError";
    this.issues = issues;
  }
}

export type TemplateDocumentValidation =
  | { ok: true; definition: TemplateDefinition }
  | { ok: false; issues: ValidationIssue[] };

const encoder = new TextEncoder();

/**
 * Validates a document (JSON text or an already-parsed value) and returns the
 * definition with defaults filled in, or every problem found. Never throws.
 */
export function validateTemplateDocument(input: unknown): TemplateDocumentValidation {
  let value = input;
  if (typeof input === "string") {
    if (encoder.encode(input).length > MAX_TEMPLATE_DOCUMENT_BYTES) {
      return {
        ok: false,
        issues: [
          { path: "(document)", message: `must be at most ${MAX_TEMPLATE_DOCUMENT_BYTES} bytes` },
        ],
      };
    }
    try {
      value = JSON.parse(input);
    } catch (error) {
      return {
        ok: false,
        issues: [{ path: "(document)", message: `is not valid JSON: ${(error as Error).message}` }],
      };
    }
  }
  const issues: ValidationIssue[] = [];
  const definition = templateDocumentChecker.check(value, "", issues);
  if (definition === INVALID || issues.length > 0) return { ok: false, issues };
  return { ok: true, definition };
}

/**
 * Parses a `template.json` (text or parsed value) into a `TemplateDefinition`
 * with defaults filled in. Throws `TemplateDocumentError` (TEMPLATE_INVALID)
 * listing every problem.
 */
export function parseTemplateDocument(input: unknown): TemplateDefinition {
  const result = validateTemplateDocument(input);
  if (!result.ok) throw new TemplateDocumentError(result.issues);
  return result.definition;
}

/**
 * JSON with object keys sorted (recursively), no whitespace and `undefined`
 * members dropped: equal data gives equal text, whatever the key order.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new TypeError("canonical JSON cannot hold NaN or Infinity");
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map((element) => (element === undefined ? "null" : canonicalJson(element))).join(",")}]`;
  }
  const entries = Object.entries(value)
    .filter(([, member]) => member !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, member]) => `${JSON.stringify(key)}:${canonicalJson(member)}`).join(",")}}`;
}

/**
 * `sha256:<hex>` of a definition's canonical JSON. Async because it uses Web
 * Crypto, so it runs unchanged in the panel (browser) and in Node.
 */
export async function templateDefinitionDigest(definition: TemplateDefinition): Promise<string> {
  const bytes = encoder.encode(canonicalJson(definition));
  const hash = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", bytes));
  let hex = "";
  for (const byte of hash) hex += byte.toString(16).padStart(2, "0");
  return `sha256:${hex}`;
}

/** A definition as `template.json` text (two-space indent, trailing newline). */
export function formatTemplateDocument(definition: TemplateDefinition): string {
  return `${JSON.stringify(definition, null, 2)}\n`;
}

/**
 * What a storage adapter writes as `templates/<name>/template.json`: checks the
 * name and the size limit (every adapter enforces the same two), returns UTF-8 bytes.
 */
export function templateDocumentBytes(name: string, json: string): Uint8Array {
  assertTemplateName(name);
  const bytes = encoder.encode(json);
  if (bytes.length > MAX_TEMPLATE_DOCUMENT_BYTES) {
    throw new ValidationError([
      { path: "json", message: `must be at most ${MAX_TEMPLATE_DOCUMENT_BYTES} bytes` },
    ]);
  }
  return bytes;
}
