/**
 * Hot queries compiled once per dialect and shape, then run with new
 * arguments: building and compiling a kysely query costs 4–16 µs, which on
 * SQLite is more than executing it. The builder receives placeholder
 * arguments; compiling it records which SQL parameter is which argument, and
 * each run binds the real values by name. Only for queries whose shape does
 * not depend on the values (no IN lists of varying length): pass a `shape`
 * key when it does depend on something else (e.g. which columns an UPDATE sets).
 */
import { type Compilable, CompiledQuery, type Kysely, type QueryResult } from "kysely";
import type { Database } from "./schema.js";

const MARK = "\u0000orch-argument:";

type Slot = { argument: string } | { constant: unknown };

interface Compiled {
  sql: string;
  slots: Slot[];
}

export class PreparedQuery<A extends object, R> {
  readonly #build: (db: Kysely<Database>, args: A, shape: string) => Compilable<R>;
  // Compiled per dialect adapter (a transaction shares its database's adapter).
  readonly #compiled = new WeakMap<object, Map<string, Compiled>>();

  constructor(build: (db: Kysely<Database>, args: A, shape: string) => Compilable<R>) {
    this.#build = build;
  }

  #compile(db: Kysely<Database>, shape: string): Compiled {
    const adapter = db.getExecutor().adapter;
    let byShape = this.#compiled.get(adapter);
    if (!byShape) {
      byShape = new Map();
      this.#compiled.set(adapter, byShape);
    }
    const cached = byShape.get(shape);
    if (cached) return cached;
    const placeholders = new Proxy(
      {},
      { get: (_target, name) => (typeof name === "string" ? `${MARK}${name}` : undefined) },
    ) as A;
    const query = this.#build(db, placeholders, shape).compile();
    if (query.sql.includes(MARK)) {
      throw new Error("a prepared query's arguments must be bound as parameters, not inlined");
    }
    const slots = query.parameters.map(
      (parameter): Slot =>
        typeof parameter === "string" && parameter.startsWith(MARK)
          ? { argument: parameter.slice(MARK.length) }
          : { constant: parameter },
    );
    const compiled = { sql: query.sql, slots };
    byShape.set(shape, compiled);
    return compiled;
  }

  /** Runs the query on `db` (the pool or a transaction) with `args`. */
  execute(db: Kysely<Database>, args: A, shape = ""): Promise<QueryResult<R>> {
    const { sql, slots } = this.#compile(db, shape);
    const values = args as Record<string, unknown>;
    const parameters = slots.map((slot) =>
      "argument" in slot ? values[slot.argument] : slot.constant,
    );
    return db.executeQuery<R>(CompiledQuery.raw(sql, parameters));
  }
}

/** `{ column: args.column }` for each column: an insert's values as placeholders. */
export function pick<T extends object, K extends keyof T>(
  args: T,
  columns: readonly K[],
): Pick<T, K> {
  const picked = {} as Pick<T, K>;
  for (const column of columns) picked[column] = args[column];
  return picked;
}
