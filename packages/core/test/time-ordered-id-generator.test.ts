import { describe, expect, it } from "vitest";
import { timeOrderedIdGenerator, uuidV7 } from "../src/index.js";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("time-ordered ids (UUIDv7)", () => {
  it("are RFC 9562 version 7 UUIDs carrying the time, with the prefix", () => {
    const at = Date.UTC(2026, 10, 26, 12, 0, 0);
    const id = uuidV7(at);
    expect(id).toMatch(UUID_V7);
    expect(Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16)).toBe(at);
    expect(timeOrderedIdGenerator.next("inst")).toMatch(/^inst_[0-9a-f-]{36}$/);
    expect(timeOrderedIdGenerator.next()).toMatch(UUID_V7);
  });

  it("sort in the order they were made, even thousands in one millisecond, and never repeat", () => {
    const ids = Array.from({ length: 10_000 }, () => uuidV7(Date.UTC(2030, 0, 1)));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    const later = uuidV7(Date.UTC(2030, 0, 1) + 60_000);
    expect(later > ids.at(-1)!).toBe(true);
  });
});
