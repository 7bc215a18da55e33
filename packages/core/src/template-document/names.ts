/**
 * Names of templates and layers, and the object keys (paths) of files inside a
 * layer. Both end up in storage keys and local paths, so anything ambiguous is
 * refused outright: we never normalise (`a/./b`, `a\b`, `/a`) into something
 * else, because two spellings of one path are how traversal bugs start.
 */
import { ValidationError } from "../errors/orchestrator-error.js";

/** One segment of a template or layer name. */
export const NAME_SEGMENT_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** A whole name: segments joined by `/` (e.g. `base/node-app`). As JSON Schema text. */
export const NAME_PATTERN_SOURCE = "^[a-z0-9][a-z0-9._-]{0,63}(/[a-z0-9][a-z0-9._-]{0,63})*$";

/** Most segments a name may have. */
export const MAX_NAME_SEGMENTS = 8;

/** Longest name, in characters (8 segments of 64 plus separators stay below it). */
export const MAX_NAME_LENGTH = 255;

/** Longest object key (path inside a layer), in UTF-8 bytes; S3's own limit is 1024. */
export const MAX_OBJECT_KEY_BYTES = 1024;

/** Longest single path segment, in UTF-8 bytes (the usual file-system limit). */
export const MAX_OBJECT_KEY_SEGMENT_BYTES = 255;

/** Deepest path inside a layer. */
export const MAX_OBJECT_KEY_DEPTH = 64;

const encoder = new TextEncoder();
// C0 controls, DEL and C1 controls: invisible in logs and terminals, so refused.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

/** Why `name` is not a valid template or layer name, or null when it is. */
export function nameProblem(name: unknown): string | null {
  if (typeof name !== "string") return "must be a string";
  if (name.length === 0) return "must not be empty";
  if (name.length > MAX_NAME_LENGTH) return `must be at most ${MAX_NAME_LENGTH} characters`;
  // `..` cannot appear as a segment (segments start with [a-z0-9]) but `a..b` could;
  // names become parts of object keys, where `..` is refused, so refuse it here too.
  if (name.includes("..")) return "must not contain '..'";
  const segments = name.split("/");
  if (segments.length > MAX_NAME_SEGMENTS) return `must have at most ${MAX_NAME_SEGMENTS} segments`;
  for (const segment of segments) {
    if (!NAME_SEGMENT_PATTERN.test(segment)) {
      return "must be lower-case segments matching ^[a-z0-9][a-z0-9._-]{0,63}$ separated by '/'";
    }
  }
  return null;
}

/** True when `name` is a valid template or layer name. */
export function isValidName(name: unknown): name is string {
  return nameProblem(name) === null;
}

/**
 * Why `key` is not a valid path inside a layer, or null when it is. Refused:
 * empty keys, a leading `/`, backslashes, control characters, `..` anywhere,
 * empty or `.` segments (`a//b`, `a/./b`, a trailing `/`), and over-long keys.
 */
export function objectKeyProblem(key: unknown): string | null {
  if (typeof key !== "string") return "must be a string";
  if (key.length === 0) return "must not be empty";
  if (key.startsWith("/")) return "must not start with '/'";
  if (key.includes("\\")) return "must not contain a backslash";
  if (CONTROL_CHARACTERS.test(key)) return "must not contain control characters";
  if (key.includes("..")) return "must not contain '..'";
  if (encoder.encode(key).length > MAX_OBJECT_KEY_BYTES) {
    return `must be at most ${MAX_OBJECT_KEY_BYTES} bytes`;
  }
  const segments = key.split("/");
  if (segments.length > MAX_OBJECT_KEY_DEPTH) {
    return `must be at most ${MAX_OBJECT_KEY_DEPTH} levels deep`;
  }
  for (const segment of segments) {
    if (segment === "") return "must not contain empty segments ('//' or a trailing '/')";
    if (segment === ".") return "must not contain '.' segments";
    if (encoder.encode(segment).length > MAX_OBJECT_KEY_SEGMENT_BYTES) {
      return `must not have a segment longer than ${MAX_OBJECT_KEY_SEGMENT_BYTES} bytes`;
    }
  }
  return null;
}

/** True when `key` is a valid path inside a layer. */
export function isValidObjectKey(key: unknown): key is string {
  return objectKeyProblem(key) === null;
}

/** Throws a `ValidationError` (VALIDATION_FAILED) unless `name` is a valid template name. */
export function assertTemplateName(name: unknown, field = "template"): asserts name is string {
  const problem = nameProblem(name);
  if (problem) throw new ValidationError([{ path: field, message: problem }]);
}

/** Throws a `ValidationError` (VALIDATION_FAILED) unless `name` is a valid layer name. */
export function assertLayerName(name: unknown, field = "layer"): asserts name is string {
  const problem = nameProblem(name);
  if (problem) throw new ValidationError([{ path: field, message: problem }]);
}

/** Throws a `ValidationError` (VALIDATION_FAILED) unless `key` is a valid path inside a layer. */
export function assertObjectKey(key: unknown, field = "path"): asserts key is string {
  const problem = objectKeyProblem(key);
  if (problem) {
    throw new ValidationError([{ path: field, message: `${JSON.stringify(key)} ${problem}` }]);
  }
}
