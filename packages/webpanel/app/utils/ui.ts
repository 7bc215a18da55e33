// The panel's pure logic lives in `src/ui` (type-checked with the package and
// unit-tested); the pages use it through this auto-imported module. The paths
// have no extension so Nuxt's auto-import scanner can resolve them.
export { validateTemplateDocument } from "#template-document";
export * from "../../src/ui/ansi";
export * from "../../src/ui/api-client";
export type * from "../../src/ui/api-types";
export * from "../../src/ui/format";
export * from "../../src/ui/lifecycle-diagram";
export * from "../../src/ui/variable-form";
