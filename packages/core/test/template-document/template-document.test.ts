// biome-ignore-all lint/suspicious/noTemplateCurlyInString: template documents hold literal ${VARIABLE} placeholders
import { describe, expect, it } from "vitest";
import { OrchestratorError } from "../../src/errors/orchestrator-error.js";
import {
  assertLayerName,
  assertObjectKey,
  canonicalJson,
  formatTemplateDocument,
  isValidName,
  isValidObjectKey,
  objectKeyProblem,
  parseTemplateDocument,
  TEMPLATE_DOCUMENT_SCHEMA,
  TemplateDocumentError,
  templateDefinitionDigest,
  validateTemplateDocument,
  variableValueProblem,
} from "../../src/template-document/index.js";
import {
  isReservedEnvName,
  RESERVED_ENV_NAMES,
  RESERVED_VARIABLE_NAMES as RESERVED_VARIABLE_NAMES_OF_VARIABLES,
  variableNameProblem,
} from "../../src/variables/variable-name.js";

/** The example from DESIGN.md, verbatim. */
const designExample = {
  name: "hello-http",
  description: "A tiny HTTP server that greets",
  layers: ["base/node-app", "hello-http"],
  variables: {
    GREETING: {
      type: "string",
      default: "Hello from Orchestrator",
      maxLength: 200,
      label: "Greeting",
      description: "Text shown on the page",
    },
  },
  files: {
    substitute: ["**/*.txt", "**/*.properties", "**/*.json"],
    link: ["**/*.jar"],
    merge: { "server.properties": "properties" },
  },
  runtime: {
    process: { command: ["node", "server.js"] },
    docker: { image: "orchestrator/node-app:1", command: ["node", "server.js"] },
  },
  env: { GREETING: "${GREETING}", PORT: "${PORT}" },
  ports: [{ name: "http", protocol: "tcp" }],
  resources: { memoryMb: 128, cpu: 0.25, diskMb: 64 },
  readiness: { log: "listening on", timeoutSeconds: 30 },
  stop: { input: null, signal: "SIGTERM", timeoutSeconds: 10 },
  restart: { policy: "on-failure", maxRestarts: 3, windowSeconds: 300 },
};

const minimal = {
  name: "mini",
  layers: ["mini"],
  runtime: { process: { command: ["./start.sh"] } },
  resources: { memoryMb: 64, cpu: 0.5, diskMb: 10 },
};

function issuesOf(input: unknown): string[] {
  const result = validateTemplateDocument(input);
  if (result.ok) throw new Error("expected the document to be invalid");
  return result.issues.map((issue) => `${issue.path}: ${issue.message}`);
}

describe("parseTemplateDocument", () => {
  it("accepts the DESIGN.md example unchanged", () => {
    const definition = parseTemplateDocument(JSON.stringify(designExample));
    expect(definition).toEqual({ ...designExample, stop: designExample.stop });
  });

  it("fills defaults for optional sections", () => {
    expect(parseTemplateDocument(minimal)).toEqual({
      ...minimal,
      variables: {},
      ports: [],
      readiness: { timeoutSeconds: 60 },
      stop: { input: null, signal: "SIGTERM", timeoutSeconds: 10 },
      restart: { policy: "never", maxRestarts: 3, windowSeconds: 300 },
    });
    const partial = parseTemplateDocument({
      ...minimal,
      ports: [{ name: "game" }],
      stop: { input: "stop" },
    });
    expect(partial.ports).toEqual([{ name: "game", protocol: "tcp" }]);
    expect(partial.stop).toEqual({ input: "stop", signal: "SIGTERM", timeoutSeconds: 10 });
  });

  it("ignores an editor's $schema hint", () => {
    const definition = parseTemplateDocument({ $schema: "./template.schema.json", ...minimal });
    expect(definition).not.toHaveProperty("$schema");
  });

  it("lists every problem at once with its path", () => {
    const issues = issuesOf({
      name: "Bad Name",
      layers: ["ok", "../escape", "ok"],
      variables: {
        lower: { type: "string" },
        PATH: { type: "string" },
        LD_PRELOAD: { type: "string" },
        INSTANCE_ID: { type: "string" },
        PORT_GAME: { type: "integer" },
        MODE: { type: "enum" },
        COUNT: { type: "integer", default: 1.5, min: 5, max: 1 },
        NAME: { type: "string", pattern: "([a-z", default: "x" },
        FLAG: { type: "boolean", maxLength: 3 },
      },
      runtime: {},
      env: { NODE_OPTIONS: "--require evil", GOOD: "x" },
      ports: [
        { name: "game", protocol: "udp", port: 25565 },
        { name: "game", protocol: "udp", port: 25565 },
      ],
      resources: { memoryMb: 0, cpu: 0, diskMb: -1 },
      readiness: { tcp: "rcon", timeoutSeconds: 30 },
      stop: { input: "stop\nnow", signal: "SIGKILL" },
      unknown: true,
    });
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^name: must be lower-case segments/),
        expect.stringMatching(/^layers\[1\]: must be lower-case segments/),
        expect.stringMatching(/^layers\[1\]: must not contain '\.\.'/),
        "layers[2]: duplicates item 0",
        expect.stringMatching(/^variables\.lower: must match/),
        "variables.PATH: 'PATH' is reserved",
        expect.stringMatching(/^variables\.LD_PRELOAD: must not start with LD_/),
        "variables.INSTANCE_ID: 'INSTANCE_ID' is reserved",
        expect.stringMatching(/^variables\.PORT_GAME: must not start with/),
        "runtime: must declare at least one runtime (process, docker)",
        "env.NODE_OPTIONS: 'NODE_OPTIONS' is reserved",
        "resources.memoryMb: must be at least 1",
        "resources.cpu: must be greater than 0",
        "resources.diskMb: must be at least 0",
        "stop.input: must be a single console line",
        "stop.signal: must be one of 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP'",
        "unknown: is not an allowed property",
      ]),
    );
    // One list of reserved names: what the variables module and the runtimes
    // refuse is refused at registration already, not only at prepare time.
    for (const name of RESERVED_VARIABLE_NAMES_OF_VARIABLES) {
      expect(variableNameProblem(name)).toBeDefined();
      expect(issuesOf({ ...minimal, variables: { [name]: { type: "string" } } })).toEqual([
        `variables.${name}: '${name}' is reserved`,
      ]);
    }
    for (const entry of RESERVED_ENV_NAMES) {
      const key = entry.endsWith("*") ? `${entry.slice(0, -1)}X` : entry;
      expect(isReservedEnvName(key)).toBe(true);
      expect(issuesOf({ ...minimal, env: { [key]: "x" } })).toHaveLength(1);
    }
    // Rules on a valid shape run too, variable by variable.
    const variableIssues = issuesOf({
      ...minimal,
      variables: {
        MODE: { type: "enum" },
        COUNT: { type: "integer", default: 1.5, min: 5, max: 1 },
        NAME: { type: "string", pattern: "([a-z", default: "x" },
        FLAG: { type: "boolean", maxLength: 3 },
        LEVEL: { type: "enum", values: ["easy", "hard"], default: "medium" },
        SHORT: { type: "string", maxLength: 3, default: "toolong" },
      },
    });
    expect(variableIssues).toEqual(
      expect.arrayContaining([
        "variables.MODE.values: is required for type 'enum'",
        "variables.COUNT.min: must not be greater than max",
        "variables.COUNT.default: must be an integer",
        expect.stringMatching(/^variables\.NAME\.pattern: is not a valid regular expression/),
        "variables.FLAG.maxLength: is not allowed for type 'boolean'",
        "variables.LEVEL.default: must be one of 'easy', 'hard'",
        "variables.SHORT.default: must be at most 3 characters",
      ]),
    );
    const portIssues = issuesOf({
      ...minimal,
      ports: [
        { name: "game", protocol: "udp", port: 25565 },
        { name: "game", protocol: "udp", port: 25565 },
      ],
      readiness: { tcp: "rcon", timeoutSeconds: 30 },
    });
    expect(portIssues).toEqual([
      "ports[1].name: duplicates ports[0]",
      "ports[1].port: duplicates ports[0]",
      "readiness.tcp: names no declared port ('rcon')",
    ]);
    expect(
      issuesOf({ ...minimal, ports: [{ name: "q", protocol: "udp" }], readiness: { tcp: "q" } }),
    ).toEqual(["readiness.tcp: port 'q' is not a TCP port"]);
  });

  it("throws a typed TEMPLATE_INVALID error carrying the issues", () => {
    let caught: unknown;
    try {
      parseTemplateDocument({ ...minimal, layers: [] });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TemplateDocumentError);
    expect(OrchestratorError.hasCode(caught, "TEMPLATE_INVALID")).toBe(true);
    expect((caught as TemplateDocumentError).issues).toEqual([
      { path: "layers", message: "must not be empty" },
    ]);
    expect((caught as TemplateDocumentError).details.issues).toHaveLength(1);
  });

  it("reports JSON syntax errors, oversized documents and non-objects", () => {
    expect(issuesOf("{ nope")[0]).toMatch(/^\(document\): is not valid JSON/);
    expect(issuesOf(`"${"x".repeat(1024 * 1024 + 1)}"`)).toEqual([
      "(document): must be at most 1048576 bytes",
    ]);
    expect(issuesOf([])).toEqual(["(document): must be an object, not an array"]);
  });

  it("keeps odd keys as plain data (no prototype pollution)", () => {
    const definition = parseTemplateDocument(
      `{"name":"a","layers":["a"],"runtime":{"process":{"command":["x"]}},"resources":{"memoryMb":1,"cpu":1,"diskMb":0},"env":{"__proto__":"x"}}`,
    );
    expect(Object.getPrototypeOf(definition.env)).toBe(Object.prototype);
    expect(Object.keys(definition.env ?? {})).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it("refuses commands with an empty program, NUL bytes or a bad image", () => {
    expect(
      issuesOf({
        ...minimal,
        runtime: {
          process: { command: ["", "a\u0000b"] },
          docker: { image: "UPPER/case" },
        },
      }),
    ).toEqual([
      "runtime.process.command[1]: must not contain NUL characters",
      "runtime.docker.image: must be a Docker image reference such as 'org/name:tag'",
    ]);
    expect(issuesOf({ ...minimal, runtime: { process: { command: [""] } } })).toEqual([
      "runtime.process.command[0]: the program must not be empty",
    ]);
    for (const image of [
      "redis:7",
      "registry.example.com:5000/org/app:1.2-rc",
      `a/b@sha256:${"0".repeat(64)}`,
    ]) {
      expect(validateTemplateDocument({ ...minimal, runtime: { docker: { image } } }).ok).toBe(
        true,
      );
    }
  });

  it("round-trips through formatTemplateDocument", () => {
    const definition = parseTemplateDocument(designExample);
    expect(parseTemplateDocument(formatTemplateDocument(definition))).toEqual(definition);
  });
});

describe("variableValueProblem", () => {
  it("applies the declared constraints", () => {
    expect(variableValueProblem({ type: "string", pattern: "[a-z]+" }, "abc")).toBeNull();
    expect(variableValueProblem({ type: "string", pattern: "[a-z]+" }, "abc1")).toBe(
      "must match [a-z]+",
    );
    expect(variableValueProblem({ type: "string" }, "a\nb")).toBe("must be a single line");
    expect(variableValueProblem({ type: "string", multiline: true }, "a\nb")).toBeNull();
    expect(variableValueProblem({ type: "number", min: 1, max: 2 }, 3)).toBe("must be at most 2");
    expect(variableValueProblem({ type: "boolean" }, "true")).toBe("must be a boolean");
  });
});

describe("names and object keys", () => {
  it("accepts lower-case segments separated by '/'", () => {
    for (const name of ["a", "base/node-app", "mc_1.20", "0", "a/b/c/d/e/f/g/h", "x".repeat(64)]) {
      expect(isValidName(name), name).toBe(true);
    }
    for (const name of [
      "",
      "A",
      "-a",
      ".a",
      "a/",
      "/a",
      "a//b",
      "a..b",
      "x".repeat(65),
      "a b",
      "a/b/c/d/e/f/g/h/i",
      "ä",
      7,
    ]) {
      expect(isValidName(name), String(name)).toBe(false);
    }
    expect(() => assertLayerName("Bad")).toThrowError(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
  });

  it("refuses ambiguous object keys instead of normalising them", () => {
    for (const key of ["a", "dir/file.txt", ".hidden", "a b/ünï cödé.txt", "x".repeat(255)]) {
      expect(isValidObjectKey(key), key).toBe(true);
    }
    const refused: [string, string][] = [
      ["", "must not be empty"],
      ["/etc/passwd", "must not start with '/'"],
      ["a\\b", "must not contain a backslash"],
      ["a\u0000b", "must not contain control characters"],
      ["a\u007fb", "must not contain control characters"],
      ["a\u0085b", "must not contain control characters"],
      ["tab\there", "must not contain control characters"],
      ["../x", "must not contain '..'"],
      ["a/../b", "must not contain '..'"],
      ["a..b", "must not contain '..'"],
      ["a//b", "must not contain empty segments ('//' or a trailing '/')"],
      ["a/", "must not contain empty segments ('//' or a trailing '/')"],
      ["./a", "must not contain '.' segments"],
      ["a/./b", "must not contain '.' segments"],
      ["x".repeat(256), "must not have a segment longer than 255 bytes"],
      [[..."a".repeat(65)].join("/"), "must be at most 64 levels deep"],
      [`${"x".repeat(200)}/`.repeat(6), "must be at most 1024 bytes"],
    ];
    for (const [key, problem] of refused) {
      expect(objectKeyProblem(key), JSON.stringify(key)).toBe(problem);
    }
    expect(() => assertObjectKey("../x", "files[0]")).toThrowError(
      expect.objectContaining({
        code: "VALIDATION_FAILED",
        issues: [{ path: "files[0]", message: `"../x" must not contain '..'` }],
      }),
    );
  });
});

describe("canonical digest", () => {
  it("ignores key order and whitespace, and changes with the content", async () => {
    const a = parseTemplateDocument(designExample);
    const reordered = Object.fromEntries(Object.entries(designExample).reverse());
    const b = parseTemplateDocument(JSON.stringify(reordered, null, 4));
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    const digest = await templateDefinitionDigest(a);
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await templateDefinitionDigest(b)).toBe(digest);
    const changed = parseTemplateDocument({ ...designExample, description: "changed" });
    expect(await templateDefinitionDigest(changed)).not.toBe(digest);
    expect(canonicalJson({ b: 1, a: [1, { d: undefined, c: "x" }] })).toBe(
      '{"a":[1,{"c":"x"}],"b":1}',
    );
    expect(() => canonicalJson({ x: Number.NaN })).toThrow(TypeError);
  });
});

describe("the published JSON Schema", () => {
  it("is a draft 2020-12 schema that JSON Schema tools agree with", async () => {
    expect(TEMPLATE_DOCUMENT_SCHEMA.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    // ajv is only here as fastify's dependency: a JSON Schema tool independent of our checker.
    const { Ajv2020 } = await import("ajv/dist/2020.js");
    const ajv = new Ajv2020({
      strict: true,
      strictRequired: false,
      strictTuples: false,
      allowUnionTypes: true,
      allErrors: true,
    });
    const validate = ajv.compile(structuredClone(TEMPLATE_DOCUMENT_SCHEMA));
    const accepted = [designExample, minimal, { ...minimal, $schema: "x" }];
    for (const document of accepted) {
      expect(validate(structuredClone(document)), JSON.stringify(validate.errors)).toBe(true);
      expect(validateTemplateDocument(document).ok).toBe(true);
    }
    // Refused by both: structural rules live in the schema too.
    const refused = [
      { ...minimal, name: "Bad" },
      { ...minimal, layers: [] },
      { ...minimal, layers: ["a", "a"] },
      { ...minimal, runtime: {} },
      { ...minimal, extra: 1 },
      { ...minimal, variables: { PATH: { type: "string" } } },
      { ...minimal, variables: { LD_X: { type: "string" } } },
      { ...minimal, variables: { E: { type: "enum" } } },
      { ...minimal, variables: { B: { type: "boolean", default: "yes" } } },
      { ...minimal, variables: { B: { type: "boolean", pattern: "x" } } },
      { ...minimal, variables: { N: { type: "integer", default: 1.5 } } },
      { ...minimal, env: { LD_PRELOAD: "x" } },
      { ...minimal, readiness: { log: "x", tcp: "y" } },
      { ...minimal, files: { link: ["../x"] } },
      { ...minimal, files: { substitute: ["/abs"] } },
      { ...minimal, stop: { input: "a\nb" } },
      { ...minimal, runtime: { process: { command: [""] } } },
      { ...minimal, resources: { memoryMb: 1, cpu: 0, diskMb: 0 } },
    ];
    for (const document of refused) {
      expect(validate(structuredClone(document)), JSON.stringify(document)).toBe(false);
      expect(validateTemplateDocument(document).ok, JSON.stringify(document)).toBe(false);
    }
  });
});
