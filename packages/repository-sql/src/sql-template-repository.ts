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
import type { TemplatesTable, TemplateVersionsTable } from "./schema.js";
import type { SqlScope } from "./sql-executor.js";
import { forUpdate } from "./sql-helpers.js";

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
    const row = await this.#scope.read((db) => {
      const query = db
        .selectFrom("orch_template_versions")
        .selectAll("orch_template_versions")
        .where("orch_template_versions.template_name", "=", name);
      return version !== undefined
        ? query.where("version", "=", version).executeTakeFirst()
        : query
            .innerJoin("orch_templates", (join) =>
              join
                .onRef("orch_templates.name", "=", "orch_template_versions.template_name")
                .onRef("orch_templates.latest_version", "=", "orch_template_versions.version"),
            )
            .executeTakeFirst();
    });
    return row ? toVersion(row) : null;
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
