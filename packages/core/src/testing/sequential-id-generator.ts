import type { IdGenerator } from "../ports/id-generator.js";

/**
 * Predictable ids: `inst_1`, `inst_2`, `cmd_3`, ... With a `source`
 * (`inst_a1`, `cmd_a2`), several generators writing to one store (two Brains
 * in a test) never hand out the same id.
 */
export class SequentialIdGenerator implements IdGenerator {
  private counter = 0;

  constructor(private readonly source = "") {}

  next(prefix = "id"): string {
    this.counter += 1;
    return `${prefix}_${this.source}${this.counter}`;
  }
}
