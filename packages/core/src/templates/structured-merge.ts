/**
 * Key-level merge of configuration files across layers: a later layer
 * overrides the keys it sets and keeps every other key of the layers below.
 * Objects/maps merge recursively; arrays and scalars are replaced whole.
 * The lowest layer's layout (comments, key order) is kept where the format allows.
 */
import { type Document, isMap, isScalar, parseAllDocuments, type YAMLMap } from "yaml";
import { TemplateInvalidError } from "../errors/orchestrator-error.js";
import type { StructuredFormat } from "./file-policy.js";

/** One layer's version of the file. `source` names it in errors (`layer:path`). */
export interface StructuredDocument {
  source: string;
  text: string;
}

/** Merges `documents` (lowest layer first) in `format`; throws `TEMPLATE_INVALID` on unparsable input. */
export function mergeStructured(
  format: StructuredFormat,
  documents: readonly StructuredDocument[],
): string {
  if (documents.length === 0) throw new TemplateInvalidError("nothing to merge");
  switch (format) {
    case "properties":
      return mergeProperties(documents);
    case "json":
      return mergeJson(documents);
    case "yaml":
      return mergeYaml(documents);
  }
}

// ---------------------------------------------------------------- .properties

interface PropertiesLine {
  /** The logical line as written (continuation lines included, no final line break). */
  raw: string;
  /** The unescaped key, for key lines. */
  key?: string;
}

const WHITESPACE = new Set([" ", "\t", "\f"]);

function unescapeKey(key: string): string {
  return key.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, escaped: string) => {
    if (escaped.length === 5) return String.fromCharCode(Number.parseInt(escaped.slice(1), 16));
    return ({ t: "\t", n: "\n", r: "\r", f: "\f" } as Record<string, string>)[escaped] ?? escaped;
  });
}

/** Parses Java `.properties` into logical lines (java.util.Properties#load rules). */
export function parseProperties(text: string): { lines: PropertiesLine[]; newline: string } {
  const newline = text.includes("\r\n") ? "\r\n" : "\n";
  const natural = text.split(/\r\n|\r|\n/);
  if (natural.length > 0 && natural[natural.length - 1] === "") natural.pop();
  const lines: PropertiesLine[] = [];
  for (let i = 0; i < natural.length; i += 1) {
    const rawParts = [natural[i]!];
    let content = natural[i]!.replace(/^[ \t\f]+/, "");
    if (content === "" || content.startsWith("#") || content.startsWith("!")) {
      lines.push({ raw: rawParts[0]! });
      continue;
    }
    // A line ending in an odd number of backslashes continues on the next one.
    while (/(^|[^\\])(\\\\)*\\$/.test(content) && i + 1 < natural.length) {
      i += 1;
      rawParts.push(natural[i]!);
      content = content.slice(0, -1) + natural[i]!.replace(/^[ \t\f]+/, "");
    }
    let end = 0;
    while (end < content.length) {
      const char = content[end]!;
      if (char === "\\") {
        end += 2;
        continue;
      }
      if (char === "=" || char === ":" || WHITESPACE.has(char)) break;
      end += 1;
    }
    lines.push({ raw: rawParts.join(newline), key: unescapeKey(content.slice(0, end)) });
  }
  return { lines, newline };
}

function mergeProperties(documents: readonly StructuredDocument[]): string {
  const [base, ...uppers] = documents;
  const { lines, newline } = parseProperties(base!.text);
  const index = new Map<string, number>();
  lines.forEach((line, position) => {
    if (line.key !== undefined) index.set(line.key, position);
  });
  for (const upper of uppers) {
    for (const line of parseProperties(upper.text).lines) {
      if (line.key === undefined) continue;
      const position = index.get(line.key);
      if (position === undefined) {
        index.set(line.key, lines.length);
        lines.push(line);
      } else {
        lines[position] = line;
      }
    }
  }
  return lines.map((line) => line.raw).join(newline) + newline;
}

// ---------------------------------------------------------------- JSON

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: Json): value is { [key: string]: Json } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function mergeJsonValues(base: Json, upper: Json): Json {
  if (!isObject(base) || !isObject(upper)) return upper;
  // Null-prototype result: a "__proto__" key stays a plain key, never a prototype.
  const result: { [key: string]: Json } = Object.create(null);
  for (const [key, value] of Object.entries(base)) result[key] = value;
  for (const [key, value] of Object.entries(upper)) {
    result[key] = Object.hasOwn(result, key) ? mergeJsonValues(result[key]!, value) : value;
  }
  return result;
}

function detectIndent(text: string): string | number {
  const match = /^[{[]\r?\n([ \t]+)\S/.exec(text.trimStart());
  return match?.[1] ?? 2;
}

function mergeJson(documents: readonly StructuredDocument[]): string {
  let merged: Json | undefined;
  for (const document of documents) {
    let parsed: Json;
    try {
      parsed = JSON.parse(document.text) as Json;
    } catch (cause) {
      throw new TemplateInvalidError(
        `${document.source}: not valid JSON (${(cause as Error).message})`,
        {
          details: { path: document.source, reason: "invalid JSON" },
        },
      );
    }
    merged = merged === undefined ? parsed : mergeJsonValues(merged, parsed);
  }
  return `${JSON.stringify(merged, null, detectIndent(documents[0]!.text))}\n`;
}

// ---------------------------------------------------------------- YAML

function parseYaml(document: StructuredDocument): Document {
  const parsed = parseAllDocuments(document.text, { uniqueKeys: true });
  const fail = (reason: string) =>
    new TemplateInvalidError(`${document.source}: ${reason}`, {
      details: { path: document.source, reason },
    });
  if (!Array.isArray(parsed)) throw fail("not a YAML document");
  if (parsed.length > 1) throw fail("holds several YAML documents (structured merge takes one)");
  const doc = parsed[0];
  if (!doc) throw fail("is empty");
  if (doc.errors.length > 0)
    throw fail(`not valid YAML (${doc.errors[0]!.message.split("\n")[0]})`);
  return doc;
}

function mergeYamlMaps(base: Document, target: YAMLMap, upperDoc: Document, upper: YAMLMap): void {
  for (const pair of upper.items) {
    const key = isScalar(pair.key) ? pair.key.value : pair.key;
    const current = target.get(key, true);
    if (isMap(current) && isMap(pair.value)) {
      mergeYamlMaps(base, current, upperDoc, pair.value);
    } else {
      // Converted through plain values: anchors/aliases of the upper document
      // are resolved there (bounded by yaml's alias-count limit), never shared.
      const value =
        pair.value === null
          ? null
          : (pair.value as { toJS(doc: Document): unknown }).toJS(upperDoc);
      target.set(key, base.createNode(value));
    }
  }
}

function mergeYaml(documents: readonly StructuredDocument[]): string {
  const [first, ...uppers] = documents;
  const base = parseYaml(first!);
  for (const upperSource of uppers) {
    const upper = parseYaml(upperSource);
    try {
      if (isMap(base.contents) && isMap(upper.contents)) {
        mergeYamlMaps(base, base.contents, upper, upper.contents);
      } else {
        base.contents = base.createNode(upper.toJS()) as typeof base.contents;
      }
    } catch (cause) {
      // yaml refuses alias bombs ("billion laughs") while resolving them.
      const reason = `cannot be merged (${(cause as Error).message})`;
      throw new TemplateInvalidError(`${upperSource.source}: ${reason}`, {
        cause,
        details: { path: upperSource.source, reason },
      });
    }
  }
  return base.toString();
}
