import type { Template, TemplateDefinition, TemplateVersion } from "../domain/template.js";

/** Templates and their immutable versions. */
export interface TemplateRepository {
  /** All templates, ordered by name. */
  list(): Promise<Template[]>;
  /** One template, or null. */
  get(name: string): Promise<Template | null>;
  /** A version (the latest when `version` is absent), or null. */
  getVersion(name: string, version?: number): Promise<TemplateVersion | null>;
  /** Every version of a template, oldest first (empty for an unknown template). */
  listVersions(name: string): Promise<TemplateVersion[]>;
  /**
   * Stores a new version (creating the template on first use). When the digest
   * equals the latest version's, nothing is written and that version is
   * returned with `created: false`. Versions are numbered 1, 2, 3, ... and a
   * number is never reused, even after concurrent pushes.
   */
  addVersion(
    definition: TemplateDefinition,
    digest: string,
    at: Date,
  ): Promise<{ version: TemplateVersion; created: boolean }>;
  /** Deletes a template and its versions. NOT_FOUND when unknown; CONFLICT while instances use it. */
  delete(name: string): Promise<void>;
}
