import { describeTemplateStorageConformance } from "../../src/testing/index.js";
import { MemoryTemplateStorage } from "./memory-template-storage.js";

// The suite checked against the in-memory fake the cache tests rely on.
describeTemplateStorageConformance("MemoryTemplateStorage (test fake)", () => ({
  storage: new MemoryTemplateStorage(),
}));
