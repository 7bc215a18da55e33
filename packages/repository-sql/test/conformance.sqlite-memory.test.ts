import { describeRepositoryConformance } from "@orchestrator/core/testing";
import { sqliteMemoryHarness } from "./helpers.js";

describeRepositoryConformance("SQLite in memory", () => sqliteMemoryHarness());
