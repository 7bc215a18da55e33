import { randomUUID } from "node:crypto";

/** Makes unique ids, injected so tests get predictable ones. */
export interface IdGenerator {
  /** A new unique id, optionally prefixed (`inst_…`, `cmd_…`). */
  next(prefix?: string): string;
}

/** Random UUID-based ids. */
export const randomIdGenerator: IdGenerator = {
  next: (prefix) => (prefix ? `${prefix}_${randomUUID()}` : randomUUID()),
};
