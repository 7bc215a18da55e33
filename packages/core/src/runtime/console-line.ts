/**
 * One console line for a server's stdin (the `input` command): the API, the
 * Brain and every runtime check it the same way.
 */
import { ValidationError } from "../errors/orchestrator-error.js";

/** Longest console line accepted. */
export const MAX_CONSOLE_LINE_LENGTH = 4096;

// Tabs are fine; line breaks and other control characters would split or forge lines.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const REFUSED = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** Throws VALIDATION_FAILED unless `line` is one non-empty line of printable text. */
export function assertConsoleLine(line: unknown): asserts line is string {
  if (typeof line !== "string" || line.length === 0 || line.length > MAX_CONSOLE_LINE_LENGTH) {
    throw new ValidationError([
      { path: "line", message: `one line of 1 to ${MAX_CONSOLE_LINE_LENGTH} characters` },
    ]);
  }
  if (REFUSED.test(line)) {
    throw new ValidationError([{ path: "line", message: "one line without control characters" }]);
  }
}
