// The panel's pure logic lives in `src/ui` (type-checked with the package and
// unit-tested); the pages use it through this auto-imported module. The paths
// have no extension so Nuxt's auto-import scanner can resolve them. The API
// types are listed by name: the scanner skips `export type *`, and the pages
// would then see them as unknown names (vue-tsc reports that).
export { validateTemplateDocument } from "@orchestrator/core/template-document";
export * from "../../src/ui/ansi";
export * from "../../src/ui/api-client";
export type {
  ApiAuditEntry,
  ApiErrorBody,
  ApiEvent,
  ApiInstance,
  ApiIssue,
  ApiLogLine,
  ApiMe,
  ApiNode,
  ApiNodeDetail,
  ApiPage,
  ApiRole,
  ApiStatsSample,
  ApiTemplate,
  ApiTemplateDetails,
  ApiTokenInfo,
  ApiUser,
  Wire,
} from "../../src/ui/api-types";
export * from "../../src/ui/format";
export * from "../../src/ui/lifecycle-diagram";
export * from "../../src/ui/stats";
export * from "../../src/ui/variable-form";
