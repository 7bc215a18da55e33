// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${NAME} placeholders in plain strings are the subject of these tests
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseProperties } from "../../src/templates/index.js";
import { escapeValue, escapingForPath, VariableSubstituter } from "../../src/variables/index.js";

describe("value escaping", () => {
  it("escapes JSON string content and properties values", () => {
    expect(escapeValue('a"b\\c\nd\u0001', "json")).toBe('a\\"b\\\\c\\nd\\u0001');
    expect(escapeValue("C:\\games\nadmin=true\tx", "properties")).toBe(
      "C:\\\\games\\nadmin=true\\tx",
    );
    expect(escapeValue('raw "as is"\n', "none")).toBe('raw "as is"\n');
  });

  it("picks the escaping from the merge format, else the extension", () => {
    expect(escapingForPath("config/app.JSON")).toBe("json");
    expect(escapingForPath("server.properties")).toBe("properties");
    expect(escapingForPath("a.yml")).toBe("none");
    expect(escapingForPath("settings.conf", "json")).toBe("json");
    expect(escapingForPath("weird.json", "yaml")).toBe("none");
  });

  it("keeps any value inside its JSON string (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (value) => {
        const substituter = new VariableSubstituter({ V: value });
        const { text } = substituter.substituteString(
          '{"motd": "${V}", "admin": false}',
          "c.json",
          "json",
        );
        expect(JSON.parse(text)).toEqual({ motd: value, admin: false });
      }),
      { numRuns: 500 },
    );
  });

  it("keeps any value inside its .properties entry (property)", () => {
    fc.assert(
      fc.property(fc.string(), (value) => {
        const substituter = new VariableSubstituter({ V: value });
        const { text } = substituter.substituteString(
          "motd=${V}\nadmin=false\n",
          "s.properties",
          "properties",
        );
        expect(parseProperties(text).lines.map((line) => line.key)).toEqual(["motd", "admin"]);
      }),
      { numRuns: 500 },
    );
  });

  it("never escapes the template's own defaults", () => {
    const substituter = new VariableSubstituter({ EMPTY: "" });
    expect(substituter.substituteString('"${EMPTY:-a\\"b}"', "x.json", "json").text).toBe(
      '"a\\"b"',
    );
  });
});
