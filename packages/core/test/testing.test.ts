import { describe, expect, it } from "vitest";
import {
  FakeClock,
  SequentialIdGenerator,
  testServiceEnv,
  testServiceSkipReason,
} from "../src/testing/index.js";

describe("FakeClock", () => {
  it("moves only when told, wall and monotonic together", () => {
    const clock = new FakeClock("2026-05-01T12:00:00Z");
    expect(clock.now().toISOString()).toBe("2026-05-01T12:00:00.000Z");
    clock.advance(15_000);
    expect(clock.now().toISOString()).toBe("2026-05-01T12:00:15.000Z");
    expect(clock.monotonicMs()).toBe(15_000);
  });

  it("lets the wall clock jump without touching monotonic time", () => {
    const clock = new FakeClock();
    clock.advance(1000);
    clock.setWallClock("2020-01-01T00:00:00Z");
    expect(clock.now().getUTCFullYear()).toBe(2020);
    expect(clock.monotonicMs()).toBe(1000);
    expect(() => clock.advance(-1)).toThrow(RangeError);
  });
});

describe("SequentialIdGenerator", () => {
  it("hands out predictable, unique ids", () => {
    const ids = new SequentialIdGenerator();
    expect([ids.next("inst"), ids.next("cmd"), ids.next()]).toEqual(["inst_1", "cmd_2", "id_3"]);
  });
});

describe("test services", () => {
  it("reads a service's variables, or says what is missing", () => {
    const env = { ORCH_TEST_MYSQL_URL: "mysql://u:p@127.0.0.1:3306/db" };
    expect(testServiceEnv("mysql", env)).toEqual(env);
    expect(testServiceSkipReason("mysql", env)).toBeNull();
    expect(testServiceEnv("s3", env)).toBeNull();
    expect(testServiceSkipReason("s3", env)).toMatch(/ORCH_TEST_S3_ENDPOINT.*not set/);
  });
});
