/**
 * `template.json`: its published JSON Schema, the validating parser, the
 * canonical digest, and the rules for template/layer names and object keys.
 * Browser-safe (no Node built-ins), so the panel uses it as is.
 */
export * from "./names.js";
export * from "./parse-template-document.js";
export type { JsonSchema } from "./schema-builder.js";
export {
  BUILT_IN_VARIABLES,
  type JsonSchemaDocument,
  MAX_TEMPLATE_DOCUMENT_BYTES,
  RESERVED_VARIABLE_NAMES,
  RESERVED_VARIABLE_PREFIXES,
  TEMPLATE_DOCUMENT_SCHEMA,
  TEMPLATE_DOCUMENT_SCHEMA_ID,
  VARIABLE_NAME_PATTERN,
  variableValueProblem,
} from "./template-document-schema.js";
