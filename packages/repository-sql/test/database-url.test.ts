import { OrchestratorError } from "@orchestrator/core";
import { describe, expect, it } from "vitest";
import { mysqlPoolOptions, mysqlPoolOptionsFromUrl, parseDatabaseUrl } from "../src/index.js";

describe("parseDatabaseUrl", () => {
  it.each([
    ["sqlite::memory:", { flavor: "sqlite", filename: ":memory:" }],
    ["sqlite://:memory:", { flavor: "sqlite", filename: ":memory:" }],
    [
      "sqlite:./.orchestrator/orchestrator.db",
      { flavor: "sqlite", filename: "./.orchestrator/orchestrator.db" },
    ],
    ["sqlite:data.db", { flavor: "sqlite", filename: "data.db" }],
    ["sqlite:///var/lib/orch/data.db", { flavor: "sqlite", filename: "/var/lib/orch/data.db" }],
    ["mysql://u:p@db:3306/orch", { flavor: "mysql", url: "mysql://u:p@db:3306/orch" }],
    ["mariadb://u:p@db/orch", { flavor: "mysql", url: "mariadb://u:p@db/orch" }],
  ])("%s", (url, expected) => {
    expect(parseDatabaseUrl(url)).toEqual(expected);
  });

  it.each(["postgres://x", "", "orchestrator.db", "mysql://"])("refuses %j", (url) => {
    const error = (() => {
      try {
        parseDatabaseUrl(url);
        return null;
      } catch (caught) {
        return caught;
      }
    })();
    expect(OrchestratorError.hasCode(error, "VALIDATION_FAILED")).toBe(true);
  });
});

describe("MySQL pool options", () => {
  it("reads credentials (percent-decoded), database and options from the URL", () => {
    expect(
      mysqlPoolOptionsFromUrl(
        "mysql://orch:p%40ss%3Aw0rd@10.0.0.5:3307/orch_prod?connectionLimit=25&ssl=true",
      ),
    ).toEqual({
      host: "10.0.0.5",
      port: 3307,
      user: "orch",
      password: "p@ss:w0rd",
      database: "orch_prod",
      connectionLimit: 25,
      ssl: { rejectUnauthorized: true },
    });
    expect(() => mysqlPoolOptionsFromUrl("postgres://x/y")).toThrow(TypeError);
  });

  it("keeps what robustness and safety need whatever the caller passes", () => {
    const options = mysqlPoolOptions({
      url: "mysql://u:p@h/db",
      pool: { multipleStatements: true, idleTimeout: 5000 },
      connectionLimit: 3,
    });
    expect(options).toMatchObject({
      connectionLimit: 3,
      multipleStatements: false,
      enableKeepAlive: true,
      idleTimeout: 5000,
      flags: ["-LOCAL_FILES"],
      charset: "UTF8MB4_BIN",
      database: "db",
    });
  });
});
