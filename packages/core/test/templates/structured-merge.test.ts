import { describe, expect, it } from "vitest";
import { mergeStructured, parseProperties } from "../../src/templates/index.js";

const doc = (text: string, source = "layer:file") => ({ source, text });

describe("properties", () => {
  it("overrides keys in place, appends new ones, keeps comments and blank lines", () => {
    const merged = mergeStructured("properties", [
      doc("# Minecraft server\n\nmotd=A server\nmax-players : 20\n! legacy comment\npvp true\n"),
      doc("pvp=false\nnew.key=1\n"),
      doc("max-players=50\n"),
    ]);
    expect(merged).toBe(
      "# Minecraft server\n\nmotd=A server\nmax-players=50\n! legacy comment\npvp=false\nnew.key=1\n",
    );
  });

  it("parses continuations, escaped separators and unicode escapes in keys", () => {
    const { lines } = parseProperties(
      "long = a \\\n   b\nkey\\=with\\:seps=v\n\\u0041BC=1\nodd\\\\=x\n",
    );
    expect(lines.map((line) => line.key)).toEqual(["long", "key=with:seps", "ABC", "odd\\"]);
    const merged = mergeStructured("properties", [
      doc("long = a \\\n   b\nother=1\n"),
      doc("long=short\n"),
    ]);
    expect(merged).toBe("long=short\nother=1\n");
  });

  it("keeps CRLF line endings of the lowest layer", () => {
    expect(mergeStructured("properties", [doc("a=1\r\nb=2\r\n"), doc("b=3\n")])).toBe(
      "a=1\r\nb=3\r\n",
    );
  });
});

describe("json", () => {
  it("merges objects recursively and replaces arrays and scalars", () => {
    const merged = mergeStructured("json", [
      doc('{"a":{"b":1,"c":[1,2]},"d":"x"}'),
      doc('{"a":{"c":[3],"e":null},"d":{"now":"object"}}'),
    ]);
    expect(JSON.parse(merged)).toEqual({ a: { b: 1, c: [3], e: null }, d: { now: "object" } });
  });

  it("keeps the lowest layer's indentation", () => {
    expect(mergeStructured("json", [doc('{\n    "a": 1\n}'), doc('{"b":2}')])).toBe(
      '{\n    "a": 1,\n    "b": 2\n}\n',
    );
  });

  it("treats __proto__ as an ordinary key (no prototype pollution)", () => {
    const merged = mergeStructured("json", [
      doc('{"x":{}}'),
      doc('{"__proto__":{"polluted":true},"x":{"__proto__":{"p":1}}}'),
    ]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(merged).toContain('"__proto__"');
  });

  it("names the layer and path of invalid JSON", () => {
    expect(() =>
      mergeStructured("json", [doc("{}"), doc("{oops", "top:config.json")]),
    ).toThrowError(
      expect.objectContaining({
        code: "TEMPLATE_INVALID",
        message: expect.stringMatching(/^top:config\.json: not valid JSON/),
      }),
    );
  });
});

describe("yaml", () => {
  it("merges maps key by key keeping the lowest layer's comments", () => {
    const merged = mergeStructured("yaml", [
      doc("# settings\nserver:\n  port: 25565 # default port\n  motd: hi\nplugins:\n  - a\n"),
      doc("server:\n  motd: hello\nplugins: [b]\n"),
    ]);
    expect(merged).toBe(
      "# settings\nserver:\n  port: 25565 # default port\n  motd: hello\nplugins:\n  - b\n",
    );
  });

  it("resolves the upper document's anchors instead of sharing nodes", () => {
    const merged = mergeStructured("yaml", [doc("a: 1\n"), doc("base: &b { x: 1 }\ncopy: *b\n")]);
    expect(merged).toBe("a: 1\nbase:\n  x: 1\ncopy:\n  x: 1\n");
  });

  it("refuses several documents, invalid YAML and duplicate keys", () => {
    for (const text of ["a: 1\n---\nb: 2\n", "a: [\n", "a: 1\na: 2\n"]) {
      expect(() => mergeStructured("yaml", [doc("x: 1\n"), doc(text)])).toThrowError(
        expect.objectContaining({ code: "TEMPLATE_INVALID" }),
      );
    }
  });

  it("refuses alias bombs in an upper layer with TEMPLATE_INVALID", () => {
    const rows = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
    for (const [name, previous] of [
      ["b", "a"],
      ["c", "b"],
      ["d", "c"],
      ["e", "d"],
      ["f", "e"],
    ]) {
      rows.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(", ")}]`);
    }
    const bomb = `${rows.join("\n")}\n`;
    for (const base of ["x: 1\n", "- 1\n"]) {
      expect(() => mergeStructured("yaml", [doc(base), doc(bomb, "top:bomb.yml")])).toThrowError(
        expect.objectContaining({
          code: "TEMPLATE_INVALID",
          message: expect.stringMatching(/^top:bomb\.yml: cannot be merged/),
        }),
      );
    }
  });

  it("replaces a non-map document whole", () => {
    expect(mergeStructured("yaml", [doc("- a\n"), doc("k: v\n")])).toBe("k: v\n");
  });
});
