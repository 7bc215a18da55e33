import type { IdGenerator } from "../ports/id-generator.js";

/** Predictable ids: `inst_1`, `inst_2`, `cmd_3`, ... */
export class SequentialIdGenerator implements IdGenerator {
  private counter = 0;

  next(prefix = "id"): string {
    this.counter += 1;
    return `${prefix}_${this.counter}`;
  }
}
