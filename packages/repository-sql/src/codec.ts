/**
 * Conversions between rows and domain values, and the checks every repository
 * applies to its inputs before they reach SQL (so SQLite, which does not
 * enforce column lengths, behaves like MySQL, which does).
 */
import type { Actor, Resources } from "@orchestrator/core";
import { ValidationError } from "@orchestrator/core";

export const MAX_ID = 128;
export const MAX_NAME = 255;
export const MAX_HASH = 255;
export const MAX_PASSWORD_HASH = 1024;
/** Long free text (reasons, messages): 64 KiB. */
export const MAX_TEXT = 65_535;

export function invalid(path: string, message: string): ValidationError {
  return new ValidationError([{ path, message }]);
}

export function checkString(path: string, value: unknown, max: number, min = 1): string {
  if (typeof value !== "string") throw invalid(path, "must be a string");
  if (value.length < min) throw invalid(path, min === 1 ? "must not be empty" : `too short`);
  if (value.length > max) throw invalid(path, `must be at most ${max} characters`);
  return value;
}

export function checkNullableString(path: string, value: unknown, max: number): string | null {
  return value === null || value === undefined ? null : checkString(path, value, max, 0);
}

export function checkInt(path: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw invalid(path, "must be an integer");
  }
  if (value < min || value > max) throw invalid(path, `must be between ${min} and ${max}`);
  return value;
}

export function checkDate(path: string, value: unknown): number {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw invalid(path, "must be a valid date");
  }
  return value.getTime();
}

export function checkOneOf<T extends string>(
  path: string,
  value: unknown,
  allowed: readonly T[],
): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw invalid(path, `must be one of ${allowed.join(", ")}`);
  }
  return value as T;
}

/** Resources in storage units: MiB integers and CPU millicores (rounded to 0.001 core). */
export function checkResources(
  path: string,
  value: Resources,
): { memoryMb: number; cpuM: number; diskMb: number } {
  if (typeof value !== "object" || value === null) throw invalid(path, "must be an object");
  const cpu = value.cpu;
  if (typeof cpu !== "number" || !Number.isFinite(cpu) || cpu < 0 || cpu > 1_000_000) {
    throw invalid(`${path}.cpu`, "must be a number between 0 and 1000000");
  }
  return {
    memoryMb: checkInt(`${path}.memoryMb`, value.memoryMb, 0, 2 ** 40),
    cpuM: Math.round(cpu * 1000),
    diskMb: checkInt(`${path}.diskMb`, value.diskMb, 0, 2 ** 40),
  };
}

export function checkPort(path: string, value: unknown): number {
  return checkInt(path, value, 1, 65_535);
}

export function checkPorts(path: string, ports: readonly number[]): number[] {
  if (!Array.isArray(ports)) throw invalid(path, "must be an array");
  const checked = ports.map((port, index) => checkPort(`${path}[${index}]`, port));
  if (new Set(checked).size !== checked.length) throw invalid(path, "must not repeat a port");
  return checked.sort((a, b) => a - b);
}

export function checkActor(path: string, actor: Actor): Actor {
  if (typeof actor !== "object" || actor === null) throw invalid(path, "must be an object");
  checkOneOf(`${path}.kind`, actor.kind, ["user", "node", "system"] as const);
  checkString(`${path}.id`, actor.id, MAX_ID);
  return actor;
}

export function checkStringRecord(path: string, value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(path, "must be an object");
  }
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== "string") throw invalid(`${path}.${key}`, "must be a string");
    out[key] = item;
  }
  return out;
}

export function checkPortRecord(path: string, value: unknown): Record<string, number> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(path, "must be an object");
  }
  const out: Record<string, number> = {};
  for (const [key, item] of Object.entries(value)) out[key] = checkPort(`${path}.${key}`, item);
  return out;
}

export function checkLimit(
  path: string,
  value: number | undefined,
  max: number,
): number | undefined {
  return value === undefined ? undefined : checkInt(path, value, 1, max);
}

export function toJson(value: unknown): string {
  return JSON.stringify(value);
}

export function fromJson<T>(text: string | null | undefined, fallback: T): T {
  if (text === null || text === undefined || text === "") return fallback;
  return JSON.parse(text) as T;
}

/** Numbers come back from mysql2 as numbers or (for COUNT on some servers) strings. */
export function num(value: unknown): number {
  return typeof value === "number" ? value : Number(value);
}

export function toDate(ms: unknown): Date {
  return new Date(num(ms));
}

export function toDateOrNull(ms: unknown): Date | null {
  return ms === null || ms === undefined ? null : new Date(num(ms));
}

export function cpuFromMillis(millis: unknown): number {
  return num(millis) / 1000;
}

export function bool(value: unknown): boolean {
  return value === true || num(value) === 1;
}

/** Opaque cursors: base64url JSON of the sort key of the last item of a page. */
export function encodeCursor(key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

export function decodeCursor(
  path: string,
  cursor: string,
  shape: readonly ("string" | "number")[],
) {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(checkString(path, cursor, 1024), "base64url").toString("utf8"));
  } catch {
    throw invalid(path, "is not a cursor from a previous page");
  }
  if (
    !Array.isArray(key) ||
    key.length !== shape.length ||
    key.some((part, index) => typeof part !== shape[index])
  ) {
    throw invalid(path, "is not a cursor from a previous page");
  }
  return key as (string | number)[];
}
