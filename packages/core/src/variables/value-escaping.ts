/**
 * Escaping of substituted values for the format of the file they land in, so
 * a value stays data: a quote cannot close a JSON string and add keys, a line
 * break cannot start a new `.properties` entry. Values are escaped, never the
 * template's own text (defaults of `${NAME:-default}` included).
 */

/**
 * `json`: as the content of a JSON string (`"`, `\` and control characters
 * escaped). `properties`: as a java.util.Properties value (`\`, line breaks,
 * tab, form feed escaped). `none`: raw (argv, env, other files).
 */
export type ValueEscaping = "none" | "json" | "properties";

const PROPERTIES_ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\f": "\\f",
};

/** `value` escaped for `escaping`. */
export function escapeValue(value: string, escaping: ValueEscaping): string {
  switch (escaping) {
    case "none":
      return value;
    case "json":
      return JSON.stringify(value).slice(1, -1);
    case "properties":
      return value.replace(/[\\\n\r\t\f]/g, (char) => PROPERTIES_ESCAPES[char]!);
  }
}

/**
 * The escaping for a file, by its structured-merge format when it has one,
 * else by its extension: `.json` → `json`, `.properties` → `properties`,
 * anything else (YAML included: its quoting depends on the context) → `none`.
 */
export function escapingForPath(
  path: string,
  format?: "properties" | "json" | "yaml",
): ValueEscaping {
  if (format === "json" || format === "properties") return format;
  if (format === "yaml") return "none";
  const lower = path.toLowerCase();
  if (lower.endsWith(".json")) return "json";
  if (lower.endsWith(".properties")) return "properties";
  return "none";
}
