/**
 * Per-path handling chosen by a template (`files` of `template.json`): which
 * files get variable substitution, which are linked instead of copied, which
 * are merged key by key across layers. Globs are picomatch globs over the
 * `/`-separated path relative to the instance root (`*.txt` matches only at the
 * root, `**\/*.txt` everywhere; dot files match).
 */
import picomatch from "picomatch";
import type { TemplateFilesDefinition } from "../domain/template.js";
import { TemplateInvalidError } from "../errors/orchestrator-error.js";

export type StructuredFormat = "properties" | "json" | "yaml";

const FORMATS: ReadonlySet<string> = new Set(["properties", "json", "yaml"]);
const MAX_GLOBS = 256;
const MAX_GLOB_LENGTH = 1024;

type Matcher = (path: string) => boolean;

function compile(field: string, globs: unknown): Matcher {
  if (globs === undefined) return () => false;
  if (!Array.isArray(globs) || globs.length > MAX_GLOBS) {
    throw new TemplateInvalidError(`files.${field} must be an array of at most ${MAX_GLOBS} globs`);
  }
  const matchers = globs.map((glob, index) => globMatcher(`files.${field}[${index}]`, glob));
  if (matchers.length === 0) return () => false;
  return (path) => matchers.some((matches) => matches(path));
}

function globMatcher(where: string, glob: unknown): Matcher {
  if (typeof glob !== "string" || glob.length === 0 || glob.length > MAX_GLOB_LENGTH) {
    throw new TemplateInvalidError(
      `${where} must be a non-empty glob of at most ${MAX_GLOB_LENGTH} characters`,
    );
  }
  if (glob.startsWith("/") || glob.split("/").includes("..")) {
    throw new TemplateInvalidError(`${where} must be relative to the instance root without '..'`);
  }
  try {
    return picomatch(glob.normalize("NFC"), { dot: true });
  } catch (cause) {
    throw new TemplateInvalidError(`${where} is not a valid glob`, { cause });
  }
}

export class FilePolicy {
  readonly #substitute: Matcher;
  readonly #link: Matcher;
  readonly #merge: { matches: Matcher; format: StructuredFormat }[];

  /** Throws `TEMPLATE_INVALID` for malformed globs or unknown merge formats. */
  constructor(files: TemplateFilesDefinition = {}) {
    if (typeof files !== "object" || files === null || Array.isArray(files)) {
      throw new TemplateInvalidError("files must be an object");
    }
    this.#substitute = compile("substitute", files.substitute);
    this.#link = compile("link", files.link);
    const merge = files.merge ?? {};
    if (typeof merge !== "object" || merge === null || Array.isArray(merge)) {
      throw new TemplateInvalidError("files.merge must map globs to properties, json or yaml");
    }
    this.#merge = Object.entries(merge).map(([glob, format]) => {
      if (!FORMATS.has(format)) {
        throw new TemplateInvalidError(
          `files.merge[${JSON.stringify(glob)}] must be properties, json or yaml`,
        );
      }
      return { matches: globMatcher(`files.merge[${JSON.stringify(glob)}]`, glob), format };
    });
  }

  /** Gets variable substitution (binary files are still never touched). */
  substitutes(path: string): boolean {
    return this.#substitute(path);
  }

  /** Declared read-only and shared: reflinked or hardlinked from the layer. */
  links(path: string): boolean {
    return this.#link(path);
  }

  /** The structured-merge format of `path` (the first matching glob wins), if any. */
  mergeFormat(path: string): StructuredFormat | undefined {
    for (const rule of this.#merge) if (rule.matches(path)) return rule.format;
    return undefined;
  }
}
