import { describe, expect, it } from "vitest";
import {
  caseFoldKey,
  entryNameProblem,
  nfc,
  relativePathProblem,
} from "../../src/templates/index.js";

describe("entry names", () => {
  it("accepts ordinary names, ASCII or not", () => {
    for (const name of [
      "server.properties",
      ".hidden",
      "a b (1).txt",
      "ünïcödé.yml",
      "日本語.json",
      "x".repeat(255),
    ]) {
      expect(entryNameProblem(name, 255)).toBeUndefined();
    }
  });

  it("names the reason for every refused name", () => {
    expect(entryNameProblem("..", 255)).toMatch(/'\.\.'/);
    expect(entryNameProblem("a\\b", 255)).toMatch(/separator/);
    expect(entryNameProblem("a\u0000b", 255)).toMatch(/control/);
    expect(entryNameProblem("a\u0085b", 255)).toMatch(/control/);
    expect(entryNameProblem("a\u2066b", 255)).toMatch(/bidirectional/);
    expect(entryNameProblem("a\ufeffb", 255)).toMatch(/invisible/);
    expect(entryNameProblem("caf\ufffd", 255)).toMatch(/UTF-8/);
    expect(entryNameProblem("x".repeat(256), 255)).toMatch(/longer than 255 bytes/);
    // Limits count UTF-8 bytes, not characters.
    expect(entryNameProblem("é".repeat(128), 255)).toMatch(/longer than 255 bytes/);
  });

  it("folds case and normalisation the same way for ASCII and Unicode", () => {
    expect(caseFoldKey("Config.YML")).toBe(caseFoldKey("config.yml"));
    expect(caseFoldKey("Straße")).toBe(caseFoldKey("STRASSE"));
    expect(caseFoldKey("cafe\u0301")).toBe(caseFoldKey("CAF\u00c9"));
    expect(nfc("cafe\u0301")).toBe("caf\u00e9");
    expect(nfc("plain.txt")).toBe("plain.txt");
  });

  it("validates relative paths read back from a manifest", () => {
    expect(relativePathProblem("config/server.yml")).toBeUndefined();
    expect(relativePathProblem("../etc/passwd")).toMatch(/'\.\.'/);
    expect(relativePathProblem("/etc/passwd")).toMatch(/absolute/);
    expect(relativePathProblem("a//b")).toMatch(/empty/);
    expect(relativePathProblem("cafe\u0301")).toMatch(/NFC/);
    expect(relativePathProblem("")).toMatch(/empty/);
  });
});
