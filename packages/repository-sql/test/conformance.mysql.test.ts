import { describeRepositoryConformance } from "@orchestrator/core/testing";
import { mysqlHarness, mysqlSkipReason } from "./helpers.js";

describeRepositoryConformance(
  "MariaDB/MySQL",
  () => mysqlHarness({ secretKey: "a-test-secret-key-of-at-least-32-characters" }),
  { skip: mysqlSkipReason },
);
