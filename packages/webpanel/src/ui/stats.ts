/**
 * Live resource usage of an instance as the panel shows it: the samples of
 * `GET /api/v1/instances/:id/stats` checked at the boundary, a bounded history
 * for the sparklines, and the figures in words (never colour only).
 */
import type { Resources } from "@orchestrator/core";
import type { ApiStatsSample } from "./api-types.js";
import { percent } from "./format.js";

const MIB = 1024 * 1024;

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

function isOptionalCount(value: unknown): value is number | null {
  return value === null || isCount(value);
}

/**
 * One `stats` event's data, or null when it is not a sample of `instanceId`
 * (malformed frames are dropped, the stream goes on).
 */
export function parseStatsSample(data: string, instanceId: string): ApiStatsSample | null {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const sample = value as Record<string, unknown>;
  if (sample.instanceId !== instanceId) return null;
  if (typeof sample.at !== "string" || Number.isNaN(Date.parse(sample.at))) return null;
  if (!isCount(sample.cpu) || !isCount(sample.memoryBytes)) return null;
  // Unknown figures are null; an absent field (an older Brain) reads the same.
  const memoryLimitBytes = sample.memoryLimitBytes ?? null;
  const networkRxBytes = sample.networkRxBytes ?? null;
  const networkTxBytes = sample.networkTxBytes ?? null;
  const diskBytes = sample.diskBytes ?? null;
  if (
    !isOptionalCount(memoryLimitBytes) ||
    !isOptionalCount(networkRxBytes) ||
    !isOptionalCount(networkTxBytes) ||
    !isOptionalCount(diskBytes)
  )
    return null;
  return {
    instanceId,
    at: sample.at,
    cpu: sample.cpu,
    memoryBytes: sample.memoryBytes,
    memoryLimitBytes,
    networkRxBytes,
    networkTxBytes,
    diskBytes,
  };
}

/** The reason in an `unsupported` event (a generic one when it has none). */
export function parseStatsUnsupported(data: string): string {
  try {
    const value: unknown = JSON.parse(data);
    if (typeof value === "object" && value !== null) {
      const reason = (value as { reason?: unknown }).reason;
      if (typeof reason === "string" && reason.trim()) return reason;
    }
  } catch {
    // Fall through to the generic reason.
  }
  return "the runtime reports no resource usage";
}

/**
 * The recent samples, oldest first, at most `capacity` of them (kept in the
 * page's memory only). A sample not newer than the last one is ignored: the
 * stream repeats the latest sample when it reconnects.
 */
export class StatsHistory {
  private readonly items: ApiStatsSample[] = [];

  constructor(readonly capacity = 90) {
    if (!Number.isInteger(capacity) || capacity < 2)
      throw new RangeError("a stats history keeps at least 2 samples");
  }

  /** Adds `sample`; false when it was a repeat or older than the last one. */
  push(sample: ApiStatsSample): boolean {
    const last = this.items.at(-1);
    if (last && Date.parse(sample.at) <= Date.parse(last.at)) return false;
    this.items.push(sample);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
    return true;
  }

  get samples(): readonly ApiStatsSample[] {
    return this.items;
  }

  get latest(): ApiStatsSample | null {
    return this.items.at(-1) ?? null;
  }

  get previous(): ApiStatsSample | null {
    return this.items.at(-2) ?? null;
  }
}

/** Bytes for people, in the same units as `megabytes`: "512 B", "3.4 KB", "42.1 MB", "1.5 GB". */
export function byteSize(count: number): string {
  if (count < 1024) return `${Math.round(count)} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = count / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 ? Math.round(value) : Math.round(value * 10) / 10} ${units[unit]}`;
}

/** Cores with a precision that still shows an idle server: "0.003", "0.12", "1.5". */
export function cores(value: number): string {
  if (value === 0) return "0";
  if (value < 0.01) return value.toFixed(3);
  if (value < 10) return String(Math.round(value * 100) / 100);
  return String(Math.round(value * 10) / 10);
}

export interface StatsFigures {
  cpu: {
    cores: number;
    /** Of the instance's CPU reservation; above 100 where the runtime does not cap CPU. */
    percentOfReservation: number | null;
    text: string;
  };
  memory: {
    usedBytes: number;
    /** The runtime's limit, or else the instance's reservation. */
    ofBytes: number | null;
    ofWhat: "limit" | "reservation" | null;
    /** 0..100, for a bar. */
    percent: number;
    text: string;
  };
  /** Null when the runtime cannot tell (no network namespace of its own). */
  network: { text: string } | null;
  disk: { text: string } | null;
}

/** Per-second rate between two cumulative counters, or null when it cannot be told. */
function rate(
  latest: ApiStatsSample,
  previous: ApiStatsSample | null,
  key: "networkRxBytes" | "networkTxBytes",
): number | null {
  const now = latest[key];
  const before = previous?.[key];
  if (!previous || now === null || before === null || before === undefined) return null;
  const seconds = (Date.parse(latest.at) - Date.parse(previous.at)) / 1000;
  // A counter that went down means the server restarted: no rate this time.
  if (!(seconds > 0) || now < before) return null;
  return (now - before) / seconds;
}

export function statsFigures(
  latest: ApiStatsSample,
  /** What the instance reserved (`InstanceView.resources`): the yardstick for the figures. */
  reserved: Resources,
  previous: ApiStatsSample | null = null,
): StatsFigures {
  const cpuShare = reserved.cpu > 0 ? Math.round((latest.cpu / reserved.cpu) * 100) : null;
  const cpuText =
    cpuShare === null
      ? `${cores(latest.cpu)} cores`
      : `${cores(latest.cpu)} cores (${cpuShare} % of ${cores(reserved.cpu)} reserved)`;

  const reservationBytes = reserved.memoryMb > 0 ? reserved.memoryMb * MIB : null;
  const ofBytes = latest.memoryLimitBytes ?? reservationBytes;
  const ofWhat =
    latest.memoryLimitBytes !== null ? "limit" : reservationBytes !== null ? "reservation" : null;
  const memoryPercent = ofBytes === null ? 0 : percent(latest.memoryBytes, ofBytes);
  const memoryText =
    ofBytes === null
      ? byteSize(latest.memoryBytes)
      : `${byteSize(latest.memoryBytes)} of ${byteSize(ofBytes)} ${ofWhat} (${Math.round((latest.memoryBytes / ofBytes) * 100)} %)`;

  let network: StatsFigures["network"] = null;
  if (latest.networkRxBytes !== null || latest.networkTxBytes !== null) {
    const part = (label: string, total: number | null, perSecond: number | null) =>
      total === null
        ? `${label} unknown`
        : `${byteSize(total)} ${label}${perSecond === null ? "" : ` (${byteSize(perSecond)}/s)`}`;
    network = {
      text: `${part("received", latest.networkRxBytes, rate(latest, previous, "networkRxBytes"))}, ${part("sent", latest.networkTxBytes, rate(latest, previous, "networkTxBytes"))}`,
    };
  }

  let disk: StatsFigures["disk"] = null;
  if (latest.diskBytes !== null) {
    const diskOf = reserved.diskMb > 0 ? reserved.diskMb * MIB : null;
    disk = {
      text:
        diskOf === null
          ? byteSize(latest.diskBytes)
          : `${byteSize(latest.diskBytes)} of ${byteSize(diskOf)} reserved`,
    };
  }

  return {
    cpu: { cores: latest.cpu, percentOfReservation: cpuShare, text: cpuText },
    memory: {
      usedBytes: latest.memoryBytes,
      ofBytes,
      ofWhat,
      percent: memoryPercent,
      text: memoryText,
    },
    network,
    disk,
  };
}

/**
 * An SVG polyline's `points` for `values` in a `width` × `height` box, the
 * oldest on the left. The top of the box is `ceiling` or the largest value,
 * whichever is higher, so a line at the top means "at the reservation".
 * Empty when there are fewer than two values.
 */
export function sparklinePoints(
  values: readonly number[],
  width: number,
  height: number,
  ceiling = 0,
): string {
  if (values.length < 2) return "";
  const top = Math.max(ceiling, ...values);
  const step = width / (values.length - 1);
  const round = (n: number) => Math.round(n * 10) / 10;
  return values
    .map((value, i) => {
      const y = top > 0 ? height - (value / top) * height : height;
      return `${round(i * step)},${round(y)}`;
    })
    .join(" ");
}

/** What a sparkline shows, in words (its accessible name). */
export function sparklineSummary(
  label: string,
  samples: readonly ApiStatsSample[],
  format: (sample: ApiStatsSample) => number,
  unit: (value: number) => string,
): string {
  const first = samples[0];
  const last = samples.at(-1);
  if (!first || !last || samples.length < 2) return `${label}: not enough samples yet`;
  const values = samples.map(format);
  const seconds = Math.round((Date.parse(last.at) - Date.parse(first.at)) / 1000);
  const span = seconds >= 120 ? `${Math.round(seconds / 60)} min` : `${seconds} s`;
  return `${label} over the last ${span}: lowest ${unit(Math.min(...values))}, highest ${unit(Math.max(...values))}, now ${unit(format(last))}`;
}
