import { describeRepositoryConformance } from "@orchestrator/core/testing";
import { sqliteFileHarness } from "./helpers.js";

describeRepositoryConformance("SQLite file (WAL)", () =>
  sqliteFileHarness({ secretKey: "a-test-secret-key-of-at-least-32-characters" }),
);
