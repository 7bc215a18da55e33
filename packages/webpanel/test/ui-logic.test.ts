/** The panel's pure logic (src/ui): console rendering, forms, formatting, the diagram. */
import { INSTANCE_STATES, INSTANCE_TRANSITIONS } from "@orchestrator/core/lifecycle";
import { describe, expect, it } from "vitest";
import { ansiClasses, parseAnsi, RecentKeys, Scrollback, stripAnsi } from "../src/ui/ansi.js";
import { ApiClient, ApiError } from "../src/ui/api-client.js";
import { ago, megabytes, percent, portUrl, safeHttpUrl } from "../src/ui/format.js";
import { diagramBoxes, diagramEdges } from "../src/ui/lifecycle-diagram.js";
import {
  byteSize,
  cores,
  parseStatsSample,
  parseStatsUnsupported,
  StatsHistory,
  sparklinePoints,
  sparklineSummary,
  statsFigures,
} from "../src/ui/stats.js";
import {
  formFields,
  issuesByField,
  unplacedIssues,
  variablesBody,
} from "../src/ui/variable-form.js";

const ESC = "\u001b";

describe("console output", () => {
  it("keeps colours as styles and carries them across lines", () => {
    const first = parseAnsi(`plain ${ESC}[1;31mred bold${ESC}[39m still bold`);
    expect(first.segments.map((s) => s.text)).toEqual(["plain ", "red bold", " still bold"]);
    expect(ansiClasses(first.segments[1]!.style)).toEqual(["ansi-fg-1", "ansi-bold"]);
    expect(ansiClasses(first.segments[2]!.style)).toEqual(["ansi-bold"]);
    const second = parseAnsi(`next${ESC}[0m reset`, first.style);
    expect(ansiClasses(second.segments[0]!.style)).toEqual(["ansi-bold"]);
    expect(ansiClasses(second.segments[1]!.style)).toEqual([]);
  });

  it("maps bright and 256-colour basics, ignores true colour", () => {
    const { segments } = parseAnsi(`${ESC}[92ma${ESC}[38;5;4mb${ESC}[38;2;1;2;3mc${ESC}[44md`);
    expect(segments.map((s) => ansiClasses(s.style))).toEqual([
      ["ansi-fg-10"],
      ["ansi-fg-4"],
      ["ansi-fg-4"],
      ["ansi-fg-4", "ansi-bg-4"],
    ]);
  });

  it("strips every other escape: cursor moves, titles, hyperlinks, control characters", () => {
    const hostile = `a${ESC}[2J${ESC}[Hb${ESC}]0;title\u0007c${ESC}]8;;javascript:alert(1)${ESC}\\link${ESC}]8;;${ESC}\\\u0000\u0008d${ESC}ce\u009b31mf\tg`;
    expect(stripAnsi(hostile)).toBe("abclinkdef\tg");
    expect(
      parseAnsi(hostile)
        .segments.map((s) => s.text)
        .join(""),
    ).toBe("abclinkdef\tg");
  });

  it("bounds the scrollback to the newest lines", () => {
    const scrollback = new Scrollback<number>(100);
    for (let i = 0; i < 1000; i++) scrollback.push(i);
    expect(scrollback.lines).toHaveLength(100);
    expect(scrollback.lines[0]).toBe(900);
    expect(scrollback.lines.at(-1)).toBe(999);
    expect(() => new Scrollback(0)).toThrow(RangeError);
  });

  it("recognises a line seen recently (duplicates from backlog + agent tail)", () => {
    const keys = new RecentKeys(2);
    expect(keys.seen("a")).toBe(false);
    expect(keys.seen("a")).toBe(true);
    expect(keys.seen("b")).toBe(false);
    expect(keys.seen("c")).toBe(false);
    // "a" was the oldest and is forgotten.
    expect(keys.seen("a")).toBe(false);
  });
});

describe("the generated create form", () => {
  const variables = {
    GREETING: { type: "string", default: "Hi", label: "Greeting", maxLength: 20 },
    PLAYERS: { type: "integer", default: 10, min: 1, max: 100 },
    RATIO: { type: "number" },
    PVP: { type: "boolean", default: true },
    MODE: { type: "enum", values: ["easy", "hard"], default: "easy" },
    MOTD: { type: "string", multiline: true },
    PASSWORD: { type: "string", secret: true, required: true },
  } as const;

  it("makes one field per variable with the right control and defaults", () => {
    const fields = formFields(variables);
    expect(fields.map((f) => [f.name, f.control, f.initial])).toEqual([
      ["GREETING", "text", "Hi"],
      ["PLAYERS", "number", "10"],
      ["RATIO", "number", ""],
      ["PVP", "checkbox", true],
      ["MODE", "select", "easy"],
      ["MOTD", "textarea", ""],
      ["PASSWORD", "password", ""],
    ]);
    expect(fields[0]).toMatchObject({ label: "Greeting", maxLength: 20 });
    expect(fields[1]).toMatchObject({ min: 1, max: 100, step: "1" });
    expect(fields[4]!.options).toEqual(["easy", "hard"]);
    expect(fields[6]!.required).toBe(true);
  });

  it("builds the variables body with typed values, leaving empty fields to their defaults", () => {
    const fields = formFields(variables);
    const body = variablesBody(fields, {
      GREETING: "Hello",
      PLAYERS: "12",
      RATIO: "abc",
      PVP: false,
      MODE: "hard",
      MOTD: "",
      PASSWORD: "s3cret",
    });
    expect(body).toEqual({
      GREETING: "Hello",
      PLAYERS: 12,
      RATIO: "abc",
      PVP: false,
      MODE: "hard",
      PASSWORD: "s3cret",
    });
  });

  it("puts the API's issues on the fields they are about", () => {
    expect(
      issuesByField([
        { path: "name", message: "must be 1-64 letters" },
        { path: "body.name", message: "must NOT have more than 64 characters" },
        { path: "variables.PLAYERS", message: "must be at most 100" },
        { path: "body.variables.RATIO", message: "must be a number" },
        { path: "body", message: "must NOT have additional properties" },
        { path: "version", message: "must be an integer" },
      ]),
    ).toEqual({
      name: ["must be 1-64 letters", "must NOT have more than 64 characters"],
      PLAYERS: ["must be at most 100"],
      RATIO: ["must be a number"],
      "": ["must NOT have additional properties"],
      version: ["must be an integer"],
    });
    expect(
      unplacedIssues(
        issuesByField([
          { path: "name", message: "bad" },
          { path: "body", message: "must NOT have additional properties" },
          { path: "version", message: "must be an integer" },
        ]),
        ["name", "template"],
      ),
    ).toEqual(["must NOT have additional properties", "version: must be an integer"]);
  });
});

describe("formatting and links", () => {
  it("says how long ago", () => {
    expect(ago(null)).toBe("never");
    expect(ago(200)).toBe("just now");
    expect(ago(5_400)).toBe("5 s ago");
    expect(ago(3 * 60_000)).toBe("3 min ago");
    expect(ago(2 * 3_600_000)).toBe("2 h ago");
    expect(ago(4 * 86_400_000)).toBe("4 d ago");
  });

  it("computes bars and sizes", () => {
    expect(percent(1, 4)).toBe(25);
    expect(percent(5, 0)).toBe(0);
    expect(percent(9, 4)).toBe(100);
    expect(megabytes(512)).toBe("512 MB");
    expect(megabytes(1536)).toBe("1.5 GB");
  });

  it("links only http(s)", () => {
    expect(safeHttpUrl("https://example.com/x")).toBe("https://example.com/x");
    expect(safeHttpUrl("javascript:alert(1)")).toBeNull();
    expect(safeHttpUrl("data:text/html,<script>")).toBeNull();
    expect(safeHttpUrl("not a url")).toBeNull();
    expect(portUrl("127.0.0.1", "http", 20000)).toBe("http://127.0.0.1:20000/");
    expect(portUrl("::1", "web", 8080)).toBe("http://[::1]:8080/");
    expect(portUrl("127.0.0.1", "game", 25565)).toBeNull();
  });
});

describe("the lifecycle diagram", () => {
  it("has one box per state and exactly the table's transitions", () => {
    expect(diagramBoxes().map((b) => b.state)).toEqual([...INSTANCE_STATES]);
    const expected = new Set<string>();
    for (const [from, row] of Object.entries(INSTANCE_TRANSITIONS)) {
      for (const targets of Object.values(row as Record<string, readonly string[]>)) {
        for (const to of targets) expected.add(`${from}->${to}`);
      }
    }
    const edges = diagramEdges();
    expect(new Set(edges.map((e) => `${e.from}->${e.to}`))).toEqual(expected);
    expect(edges.find((e) => e.from === "STARTING" && e.to === "RUNNING")?.triggers).toEqual([
      "ready",
    ]);
    // Boxes never overlap.
    const spots = diagramBoxes().map((b) => `${b.x},${b.y}`);
    expect(new Set(spots).size).toBe(spots.length);
  });
});

describe("the API client", () => {
  function fakeFetch(status: number, body: unknown, seen: Array<[string, RequestInit]> = []) {
    return (async (url: string, init: RequestInit) => {
      seen.push([url, init]);
      return new Response(body === undefined ? "" : JSON.stringify(body), { status });
    }) as unknown as typeof fetch;
  }

  it("sends the CSRF token on mutating requests only", async () => {
    const seen: Array<[string, RequestInit]> = [];
    const client = new ApiClient("/api/v1", fakeFetch(200, { ok: true }, seen));
    client.csrfToken = "csrf-1";
    await client.get("/instances");
    await client.post("/instances/x/stop");
    const headers = seen.map(([, init]) => init.headers as Record<string, string>);
    expect(headers[0]!["x-csrf-token"]).toBeUndefined();
    expect(headers[1]!["x-csrf-token"]).toBe("csrf-1");
    expect(seen[1]![0]).toBe("/api/v1/instances/x/stop");
  });

  it("turns error bodies into ApiErrors with their issues, and reports a lost session", async () => {
    const client = new ApiClient(
      "/api/v1",
      fakeFetch(400, {
        error: {
          code: "VALIDATION_FAILED",
          message: "validation failed: name: bad",
          details: { issues: [{ path: "name", message: "bad" }, { nonsense: true }] },
        },
      }),
    );
    const error = await client.post("/instances", {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({
      status: 400,
      code: "VALIDATION_FAILED",
      issues: [{ path: "name", message: "bad" }],
    });

    let lost = 0;
    const expired = new ApiClient(
      "/api/v1",
      fakeFetch(401, { error: { code: "UNAUTHORIZED", message: "no", details: {} } }),
    );
    expired.onUnauthorized = () => {
      lost++;
    };
    await expect(expired.get("/nodes")).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    await expect(expired.post("/auth/login", {})).rejects.toMatchObject({ status: 401 });
    expect(lost).toBe(1);
  });
});

describe("live stats", () => {
  const MIB = 1024 * 1024;
  const reserved = { cpu: 0.25, memoryMb: 128, diskMb: 64 };
  function sample(at: string, overrides: Record<string, unknown> = {}) {
    return {
      instanceId: "inst_1",
      at,
      cpu: 0.05,
      memoryBytes: 32 * MIB,
      memoryLimitBytes: null,
      networkRxBytes: null,
      networkTxBytes: null,
      diskBytes: null,
      ...overrides,
    };
  }

  it("accepts a sample of this instance and refuses anything else", () => {
    const good = sample("2026-11-26T12:00:00.000Z", { diskBytes: 4096 });
    expect(parseStatsSample(JSON.stringify(good), "inst_1")).toEqual(good);
    // Fields an older Brain leaves out read as unknown.
    const { networkRxBytes: _rx, ...partial } = good;
    expect(parseStatsSample(JSON.stringify(partial), "inst_1")?.networkRxBytes).toBeNull();
    expect(parseStatsSample(JSON.stringify(good), "inst_2")).toBeNull();
    expect(parseStatsSample("{not json", "inst_1")).toBeNull();
    expect(parseStatsSample("null", "inst_1")).toBeNull();
    for (const bad of [
      { at: "yesterday" },
      { cpu: -1 },
      { cpu: "0.5" },
      { memoryBytes: Number.NaN },
      { memoryLimitBytes: "128" },
      { diskBytes: -5 },
    ])
      expect(
        parseStatsSample(JSON.stringify({ ...good, ...bad }), "inst_1"),
        JSON.stringify(bad),
      ).toBeNull();
    expect(parseStatsUnsupported('{"instanceId":"inst_1","reason":"no cgroup"}')).toBe("no cgroup");
    expect(parseStatsUnsupported("garbage")).toMatch(/no resource usage/);
  });

  it("keeps a bounded history in time order, ignoring repeats", () => {
    const history = new StatsHistory(3);
    const at = (s: number) => new Date(Date.UTC(2026, 10, 26, 12, 0, s)).toISOString();
    expect(history.push(sample(at(0)))).toBe(true);
    // The stream repeats the latest sample when it reconnects.
    expect(history.push(sample(at(0)))).toBe(false);
    for (let s = 2; s <= 10; s += 2) history.push(sample(at(s), { cpu: s / 100 }));
    expect(history.samples.map((x) => x.at)).toEqual([at(6), at(8), at(10)]);
    expect(history.push(sample(at(7)))).toBe(false);
    expect(history.latest?.cpu).toBe(0.1);
    expect(history.previous?.cpu).toBe(0.08);
    expect(() => new StatsHistory(1)).toThrow(RangeError);
  });

  it("says the figures in words, against the limit or else the reservation", () => {
    const latest = sample("2026-11-26T12:00:04.000Z", {
      cpu: 0.1,
      memoryBytes: 48 * MIB,
      diskBytes: 6 * MIB,
    });
    const figures = statsFigures(latest, reserved);
    expect(figures.cpu.text).toBe("0.1 cores (40 % of 0.25 reserved)");
    expect(figures.cpu.percentOfReservation).toBe(40);
    expect(figures.memory).toMatchObject({ ofWhat: "reservation", percent: 38 });
    expect(figures.memory.text).toBe("48 MB of 128 MB reservation (38 %)");
    expect(figures.disk?.text).toBe("6 MB of 64 MB reserved");
    expect(figures.network).toBeNull();

    // A runtime limit wins over the reservation; usage above it is told as it is.
    const limited = statsFigures({ ...latest, cpu: 0.5, memoryLimitBytes: 32 * MIB }, reserved);
    expect(limited.memory.text).toBe("48 MB of 32 MB limit (150 %)");
    expect(limited.memory.percent).toBe(100);
    expect(limited.cpu.text).toContain("200 % of 0.25");
  });

  it("tells network totals and rates between two samples", () => {
    const previous = sample("2026-11-26T12:00:00.000Z", {
      networkRxBytes: 1000,
      networkTxBytes: 5000,
    });
    const latest = sample("2026-11-26T12:00:02.000Z", {
      networkRxBytes: 5096,
      networkTxBytes: 4000,
    });
    // Received: 4096 B over 2 s. Sent went down (a restart): no rate.
    expect(statsFigures(latest, reserved, previous).network?.text).toBe(
      "5 KB received (2 KB/s), 3.9 KB sent",
    );
    expect(statsFigures(latest, reserved).network?.text).toBe("5 KB received, 3.9 KB sent");
  });

  it("formats bytes and cores for people", () => {
    expect(byteSize(512)).toBe("512 B");
    expect(byteSize(1536)).toBe("1.5 KB");
    expect(byteSize(200 * MIB)).toBe("200 MB");
    expect(byteSize(3 * 1024 * MIB)).toBe("3 GB");
    expect(cores(0)).toBe("0");
    expect(cores(0.0042)).toBe("0.004");
    expect(cores(1.234)).toBe("1.23");
    expect(cores(12.34)).toBe("12.3");
  });

  it("draws sparklines scaled to the reservation, and names them in words", () => {
    expect(sparklinePoints([1], 100, 10)).toBe("");
    expect(sparklinePoints([0, 0.125, 0.25], 100, 40, 0.25)).toBe("0,40 50,20 100,0");
    // Above the ceiling the line is scaled to the largest value instead.
    expect(sparklinePoints([0, 1], 10, 10, 0.5)).toBe("0,10 10,0");
    expect(sparklinePoints([0, 0], 10, 10)).toBe("0,10 10,10");
    const samples = [0, 2, 4].map((s) =>
      sample(`2026-11-26T12:00:0${s}.000Z`, { cpu: [0.2, 0.05, 0.1][s / 2] }),
    );
    expect(
      sparklineSummary(
        "CPU",
        samples,
        (x) => x.cpu,
        (v) => `${cores(v)} cores`,
      ),
    ).toBe("CPU over the last 4 s: lowest 0.05 cores, highest 0.2 cores, now 0.1 cores");
    expect(sparklineSummary("CPU", samples.slice(0, 1), (x) => x.cpu, String)).toMatch(
      /not enough samples/,
    );
  });
});
