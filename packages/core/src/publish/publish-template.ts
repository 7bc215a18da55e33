/**
 * Publishing a template folder (what `orchestrator template push <dir>` does):
 *
 *   <dir>/template.json            the document (validated first)
 *   <dir>/layers/<layer>/...       local folders for some or all of its layers
 *
 * Layers without a local folder must already be in the storage (shared base
 * layers). Everything is checked and planned before the first write; layers
 * are uploaded before the document, so a stored document never names a layer
 * that is not there yet.
 */
import { lstat, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { TemplateDefinition } from "../domain/template.js";
import {
  ForbiddenError,
  OrchestratorError,
  ValidationError,
  type ValidationIssue,
} from "../errors/orchestrator-error.js";
import { type TemplateStorage, templateStorageCapabilities } from "../ports/template-storage.js";
import {
  formatTemplateDocument,
  parseTemplateDocument,
  templateDefinitionDigest,
  validateTemplateDocument,
} from "../template-document/parse-template-document.js";
import { MAX_TEMPLATE_DOCUMENT_BYTES } from "../template-document/template-document-schema.js";
import {
  executeLayerPublish,
  type LayerPublishPlan,
  type PublishLayerOptions,
  type PublishLayerResult,
  planLayerPublish,
} from "./publish-layer.js";

export type PublishTemplateOptions = PublishLayerOptions;

export interface PublishTemplateResult {
  name: string;
  /** The definition as stored (defaults filled in). */
  definition: TemplateDefinition;
  /** `sha256:` digest of the canonical definition. */
  digest: string;
  /** One result per layer published from a local folder, in template order. */
  layers: PublishLayerResult[];
  /** Layers used from the storage as they are (no local folder). */
  reusedLayers: string[];
  /** Whether the stored `template.json` was (or, in a dry run, would be) replaced. */
  documentChanged: boolean;
  dryRun: boolean;
}

/** Reads and validates `<dir>/template.json`. */
export async function readTemplateFolder(dir: string): Promise<TemplateDefinition> {
  const path = join(dir, "template.json");
  const stats = await lstat(path).catch(() => null);
  if (!stats?.isFile()) {
    throw new ValidationError([
      {
        path,
        message: stats?.isSymbolicLink() ? "is a symlink; symlinks are refused" : "is missing",
      },
    ]);
  }
  if (stats.size > MAX_TEMPLATE_DOCUMENT_BYTES) {
    throw new ValidationError([
      { path, message: `is larger than ${MAX_TEMPLATE_DOCUMENT_BYTES} bytes` },
    ]);
  }
  return parseTemplateDocument(await readFile(path, "utf8"));
}

/**
 * Publishes a template folder: validates `template.json`, publishes each
 * layer that has a folder under `<dir>/layers/`, checks the others exist in
 * the storage, then writes `templates/<name>/template.json` if it changed.
 */
export async function publishTemplate(
  storage: TemplateStorage,
  dir: string,
  options: PublishTemplateOptions = {},
): Promise<PublishTemplateResult> {
  if (!templateStorageCapabilities(storage).writable) {
    throw new ForbiddenError("the template storage is read-only");
  }
  const { signal } = options;
  const definition = await readTemplateFolder(dir);
  const issues: ValidationIssue[] = [];
  const plans: LayerPublishPlan[] = [];
  const reusedLayers: string[] = [];
  for (const [index, layer] of definition.layers.entries()) {
    const folder = join(dir, "layers", ...layer.split("/"));
    const stats = await lstat(folder).catch(() => null);
    if (stats?.isDirectory()) {
      try {
        plans.push(await planLayerPublish(storage, folder, layer, options));
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        for (const issue of error.issues) {
          const path = issue.path === folder ? `layers/${layer}` : `layers/${layer}/${issue.path}`;
          issues.push({ path, message: issue.message });
        }
      }
    } else if (stats) {
      issues.push({
        path: `layers[${index}]`,
        message: `${folder} is ${stats.isSymbolicLink() ? "a symlink; symlinks are refused" : "not a folder"}`,
      });
    } else {
      try {
        await storage.listLayer(layer, signal ? { signal } : {});
        reusedLayers.push(layer);
      } catch (error) {
        if (!OrchestratorError.hasCode(error, "NOT_FOUND")) throw error;
        issues.push({
          path: `layers[${index}]`,
          message: `layer '${layer}' has no folder ${folder} and is not in the storage`,
        });
      }
    }
  }
  if (issues.length) throw new ValidationError(issues);

  const layers: PublishLayerResult[] = [];
  for (const plan of plans) layers.push(await executeLayerPublish(plan, options));

  const digest = await templateDefinitionDigest(definition);
  const stored = await storage.readTemplateDocument(definition.name, signal ? { signal } : {});
  const storedResult = stored === null ? null : validateTemplateDocument(stored);
  const documentChanged =
    storedResult === null ||
    !storedResult.ok ||
    (await templateDefinitionDigest(storedResult.definition)) !== digest;
  if (documentChanged && !options.dryRun) {
    await storage.writeTemplateDocument(
      definition.name,
      formatTemplateDocument(definition),
      signal ? { signal } : {},
    );
  }
  return {
    name: definition.name,
    definition,
    digest,
    layers,
    reusedLayers,
    documentChanged,
    dryRun: options.dryRun ?? false,
  };
}
