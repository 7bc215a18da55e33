/** Templates and their immutable, numbered versions. */
import {
  ConflictError,
  NotFoundError,
  type Template,
  type TemplateDefinition,
  type TemplateRepository,
  type TemplateVersion,
} from "@orchestrator/core";
import {
  checkDate,
  checkInt,
  checkString,
  fromJson,
  invalid,
  MAX_HASH,
  MAX_NAME,
  num,
  toDate,
  toJson,
} from "./codec.js";
import { PreparedQuery } from "./prepared-query.js";
import type { TemplatesTable, TemplateVersionsTable } from "./schema.js";
import type { SqlExecutor, SqlScope } from "./sql-executor.js";
import { forUpdate } from "./sql-helpers.js";
import { templateLatestKey } from "./sql-instance-repository.js";

type VersionHead = Omit<TemplateVersionsTable, "definition">;
const HEAD_COLUMNS = ["template_name", "version", "digest", "created_at"] as const;

// Every instance creation resolves its template version: the small columns
// are read each time (so a deleted or re-created template is seen at once),
// the definition only when this row was not parsed before (see `parsed`).
const VERSION_HEAD = new PreparedQuery<{ name: string; version: number }, VersionHead>((db, args) =>
  db
    .selectFrom("orch_template_versions")
    .select(HEAD_COLUMNS)
    .where("template_name", "=", args.name)
    .where("version", "=", args.version),
);
const LATEST_HEAD = new PreparedQuery<{ name: string }, VersionHead>((db, args) =>
  db
    .selectFrom("orch_template_versions")
    .innerJoin("orch_templates", (join) =>
      join
        .onRef("orch_templates.name", "=", "orch_template_versions.template_name")
        .onRef("orch_templates.latest_version", "=", "orch_template_versions.version"),
    )
    .select(HEAD_COLUMNS.map((column) => `orch_template_versions.${column}` as const))
    .where("orch_template_versions.template_name", "=", args.name),
);
const DEFINITION = new PreparedQuery<
  { name: string; version: number },
  Pick<TemplateVersionsTable, "definition">
>((db, args) =>
  db
    .selectFrom("orch_template_versions")
    .select("definition")
    .where("template_name", "=", args.name)
    .where("version", "=", args.version),
);

/**
 * Parsed versions per database, by name, number, digest and creation time: a
 * version row never changes, and a template deleted and pushed again gets
 * rows with another creation time. The objects handed out are frozen.
 */
const parsed = new WeakMap<SqlExecutor, Map<string, TemplateVersion>>();
const PARSED_MAX = 256;

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function toTemplate(row: TemplatesTable): Template {
  return {
    name: row.name,
    description: row.description,
    latestVersion: num(row.latest_version),
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

function toVersion(row: TemplateVersionsTable): TemplateVersion {
  return {
    templateName: row.template_name,
    version: num(row.version),
    definition: fromJson<TemplateDefinition>(row.definition, {} as TemplateDefinition),
    digest: row.digest,
    createdAt: toDate(row.created_at),
  };
}

export class SqlTemplateRepository implements TemplateRepository {
  readonly #scope: SqlScope;

  constructor(scope: SqlScope) {
    this.#scope = scope;
  }

  async list(): Promise<Template[]> {
    const rows = await this.#scope.read((db) =>
      db.selectFrom("orch_templates").selectAll().orderBy("name").execute(),
    );
    return rows.map(toTemplate);
  }

  async get(name: string): Promise<Template | null> {
    const row = await this.#scope.read((db) =>
      db.selectFrom("orch_templates").selectAll().where("name", "=", name).executeTakeFirst(),
    );
    return row ? toTemplate(row) : null;
  }

  async getVersion(name: string, version?: number): Promise<TemplateVersion | null> {
    if (version !== undefined) checkInt("version", version, 1, 2 ** 31 - 1);
    if (typeof name !== "string") throw invalid("name", "must be a string");
    const { rows } = await this.#scope.read((db) =>
      version === undefined
        ? LATEST_HEAD.execute(db, { name })
        : VERSION_HEAD.execute(db, { name, version }),
    );
    const head = rows[0];
    if (!head) return null;
    let cache = parsed.get(this.#scope.executor);
    if (!cache) {
      cache = new Map();
      parsed.set(this.#scope.executor, cache);
    }
    const key = `${head.template_name}\u0000${head.version}\u0000${head.digest}\u0000${head.created_at}`;
    const cached = cache.get(key);
    if (cached) return cached;
    const { rows: definitions } = await this.#scope.read((db) =>
      DEFINITION.execute(db, { name: head.template_name, version: num(head.version) }),
    );
    const definition = definitions[0]?.definition;
    if (definition === undefined) return null; // deleted between the two reads
    const found = deepFreeze(toVersion({ ...head, definition }));
    if (cache.size >= PARSED_MAX) {
      const oldest = cache.keys().next().value;
      if (oldest !== undefined) cache.delete(oldest);
    }
    cache.set(key, found);
    return found;
  }

  async listVersions(name: string): Promise<TemplateVersion[]> {
    const rows = await this.#scope.read((db) =>
      db
        .selectFrom("orch_template_versions")
        .selectAll()
        .where("template_name", "=", name)
        .orderBy("version")
        .execute(),
    );
    return rows.map(toVersion);
  }

  async addVersion(
    definition: TemplateDefinition,
    digest: string,
    at: Date,
  ): Promise<{ version: TemplateVersion; created: boolean }> {
    if (typeof definition !== "object" || definition === null) {
      throw invalid("definition", "must be an object");
    }
    const name = checkString("definition.name", definition.name, MAX_NAME);
    const description =
      definition.description === undefined
        ? ""
        : checkString("definition.description", definition.description, 4096, 0);
    const checkedDigest = checkString("digest", digest, MAX_HASH);
    const now = checkDate("at", at);
    const document = toJson(definition);
    return this.#scope.atomic(async (scope) => {
      scope.memo.delete(templateLatestKey(name));
      // Creating the template row if needed, then locking it, serialises
      // concurrent pushes of one template: version numbers never collide.
      await scope.write((db) => {
        const insert = db.insertInto("orch_templates").values({
          name,
          description,
          latest_version: 0,
          created_at: now,
          updated_at: now,
        });
        return (
          scope.flavor.name === "mysql"
            ? insert.onDuplicateKeyUpdate({ latest_version: (eb) => eb.ref("latest_version") })
            : insert.onConflict((conflict) => conflict.doNothing())
        ).execute();
      });
      const template = await scope.read((db) =>
        forUpdate(
          scope,
          db.selectFrom("orch_templates").selectAll().where("name", "=", name),
        ).executeTakeFirstOrThrow(),
      );
      const latestNumber = num(template.latest_version);
      if (latestNumber > 0) {
        const latest = await scope.read((db) =>
          db
            .selectFrom("orch_template_versions")
            .selectAll()
            .where("template_name", "=", name)
            .where("version", "=", latestNumber)
            .executeTakeFirstOrThrow(),
        );
        if (latest.digest === checkedDigest) return { version: toVersion(latest), created: false };
      }
      const row: TemplateVersionsTable = {
        template_name: name,
        version: latestNumber + 1,
        definition: document,
        digest: checkedDigest,
        created_at: now,
      };
      await scope.write((db) => db.insertInto("orch_template_versions").values(row).execute());
      await scope.write((db) =>
        db
          .updateTable("orch_templates")
          .set({ latest_version: row.version, description, updated_at: now })
          .where("name", "=", name)
          .execute(),
      );
      return { version: toVersion(row), created: true };
    });
  }

  async delete(name: string): Promise<void> {
    await this.#scope.atomic(async (scope) => {
      scope.memo.delete(templateLatestKey(name));
      const template = await scope.read((db) =>
        forUpdate(
          scope,
          db.selectFrom("orch_templates").select("name").where("name", "=", name),
        ).executeTakeFirst(),
      );
      if (!template) throw new NotFoundError("template", name);
      const used = await scope.read((db) =>
        db
          .selectFrom("orch_instances")
          .select((eb) => eb.fn.countAll().as("count"))
          .where("template_name", "=", name)
          .where("state", "!=", "DESTROYED")
          .executeTakeFirstOrThrow(),
      );
      if (num(used.count) > 0) {
        throw new ConflictError(`template '${name}' is used by ${num(used.count)} instance(s)`, {
          details: { reason: "in-use", template: name, instances: num(used.count) },
        });
      }
      await scope.write((db) =>
        db.deleteFrom("orch_template_versions").where("template_name", "=", name).execute(),
      );
      await scope.write((db) => db.deleteFrom("orch_templates").where("name", "=", name).execute());
    });
  }
}
