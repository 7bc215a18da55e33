/**
 * Which names a layer may contain. Names are compared after NFC normalisation
 * and Unicode case folding, so `Config.yml`/`config.yml` or a decomposed
 * `é` cannot become two files on Linux and one on a case-insensitive or
 * normalising filesystem (or look identical in the panel).
 */

// C0 and C1 controls and DEL: they break terminals, logs and line-based formats.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Bidi overrides/isolates/marks (Trojan Source style spoofing) and invisible characters.
const BIDI_OR_INVISIBLE = /[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/;

// Printable ASCII without separators: the common case, checked in one test.
const PLAIN_ASCII = /^[\x20-\x2e\x30-\x5b\x5d-\x7e]+$/;

/** Why `name` (one path segment as read from disk) is refused, or undefined when it is fine. */
export function entryNameProblem(name: string, maxNameBytes: number): string | undefined {
  if (PLAIN_ASCII.test(name)) {
    if (name === "." || name === "..") return "is a '.' or '..' segment";
    return name.length > maxNameBytes ? `has a name longer than ${maxNameBytes} bytes` : undefined;
  }
  if (name.length === 0) return "has an empty name";
  if (name === "." || name === "..") return "is a '.' or '..' segment";
  if (name.includes("/") || name.includes("\\")) return "contains a path separator";
  // readdir decodes names as UTF-8; bytes that are not UTF-8 come back as U+FFFD.
  if (name.includes("\ufffd")) return "is not valid UTF-8";
  if (CONTROL.test(name)) return "contains a control character";
  if (BIDI_OR_INVISIBLE.test(name))
    return "contains a bidirectional or invisible formatting character";
  if (Buffer.byteLength(name.normalize("NFC")) > maxNameBytes) {
    return `has a name longer than ${maxNameBytes} bytes`;
  }
  return undefined;
}

/** The key two names collide on: NFC, then full case folding (ß ~ SS ~ ss). */
export function caseFoldKey(name: string): string {
  if (PLAIN_ASCII.test(name)) return name.toLowerCase();
  return name.normalize("NFC").toUpperCase().toLowerCase().normalize("NFC");
}

/** `name` in NFC (ASCII names are returned as they are, without normalising). */
export function nfc(name: string): string {
  return PLAIN_ASCII.test(name) ? name : name.normalize("NFC");
}

/**
 * Why a `/`-separated relative path (e.g. from a manifest file on disk) is
 * refused, or undefined when every segment is a valid name.
 */
export function relativePathProblem(path: string, maxNameBytes = 255): string | undefined {
  if (typeof path !== "string" || path.length === 0) return "is empty";
  if (path.startsWith("/")) return "is absolute";
  for (const segment of path.split("/")) {
    const problem = entryNameProblem(segment, maxNameBytes);
    if (problem) return problem;
    if (segment !== segment.normalize("NFC")) return "is not NFC-normalised";
  }
  return undefined;
}
