/**
 * Templates: immutable versions registered from a JSON document (the API body
 * or a `template.json` in template storage). The Brain never touches layer
 * files; it only keeps the metadata.
 */
import {
  type Actor,
  type Clock,
  NotFoundError,
  parseTemplateDocument,
  type Repositories,
  type Template,
  type TemplateStorage,
  type TemplateVersion,
  templateDefinitionDigest,
  ValidationError,
} from "@orchestrator/core";

export interface TemplateDetails {
  template: Template;
  versions: TemplateVersion[];
}

export class TemplateService {
  constructor(
    private readonly repositories: Repositories,
    private readonly clock: Clock,
    /** Where `template.json` documents can be read from; null when the Brain has none. */
    private readonly storage: TemplateStorage | null,
  ) {}

  list(): Promise<Template[]> {
    return this.repositories.templates.list();
  }

  async get(name: string): Promise<TemplateDetails> {
    const template = await this.repositories.templates.get(name);
    if (!template) throw new NotFoundError("template", name);
    return { template, versions: await this.repositories.templates.listVersions(name) };
  }

  /**
   * Registers a template (or a new version of it). An unchanged document makes
   * no new version. Returns whether a version was created.
   */
  async register(
    source: { definition: unknown } | { fromStorage: string },
    actor: Actor,
    ip: string | null,
  ): Promise<{ version: TemplateVersion; created: boolean }> {
    let document: unknown;
    if ("definition" in source) document = source.definition;
    else {
      if (!this.storage) {
        throw new ValidationError([
          { path: "fromStorage", message: "this Brain has no template storage configured" },
        ]);
      }
      const text = await this.storage.readTemplateDocument(source.fromStorage);
      if (text === null) throw new NotFoundError("template document", source.fromStorage);
      try {
        document = JSON.parse(text);
      } catch {
        throw new ValidationError([
          { path: "fromStorage", message: "template.json is not valid JSON" },
        ]);
      }
    }
    const definition = parseTemplateDocument(document);
    const digest = await templateDefinitionDigest(definition);
    return this.repositories.transaction(async (tx) => {
      const result = await tx.templates.addVersion(definition, digest, this.clock.now());
      if (result.created) {
        await tx.audit.append({
          at: this.clock.now(),
          actor,
          action: "template.register",
          target: `template:${definition.name}`,
          details: { version: result.version.version },
          source: ip,
        });
      }
      return result;
    });
  }

  async delete(name: string, actor: Actor, ip: string | null): Promise<void> {
    await this.repositories.transaction(async (tx) => {
      await tx.templates.delete(name);
      await tx.audit.append({
        at: this.clock.now(),
        actor,
        action: "template.delete",
        target: `template:${name}`,
        details: {},
        source: ip,
      });
    });
  }
}
