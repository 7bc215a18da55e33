/**
 * Reading Linux's /proc: a process's identity (pid + start time, so a reused
 * pid is never mistaken for ours), its session members, CPU ticks and
 * resident memory.
 */
import { readdir, readFile } from "node:fs/promises";

/** The fields of /proc/<pid>/stat the runtime needs. */
export interface ProcStat {
  pid: number;
  /** R, S, D, Z (zombie), T, ... */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** User + system CPU time of the process, in clock ticks. */
  cpuTicks: number;
  /** CPU time of its reaped children, in clock ticks. */
  childrenCpuTicks: number;
  /** Start time after boot, in clock ticks: with the pid, the process's identity. */
  startTicks: number;
}

/** Parses the text of /proc/<pid>/stat (the command name may hold spaces and parentheses). */
export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  const pid = Number.parseInt(text, 10);
  // Fields after the name start at field 3 (state); index i here is field i + 3.
  const fields = text
    .slice(close + 2)
    .trim()
    .split(" ");
  const number = (field: number) => Number(fields[field - 3]);
  const parsed: ProcStat = {
    pid,
    state: fields[0] ?? "?",
    ppid: number(4),
    pgrp: number(5),
    session: number(6),
    cpuTicks: number(14) + number(15),
    childrenCpuTicks: number(16) + number(17),
    startTicks: number(22),
  };
  return Number.isFinite(parsed.pid) && Number.isFinite(parsed.startTicks) ? parsed : null;
}

/** The process's stat, or null when it does not exist. */
export async function readProcStat(pid: number): Promise<ProcStat | null> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null;
  }
}

/** True while `pid` is alive (not a zombie) and is the process that started at `startTicks`. */
export async function isSameProcessAlive(pid: number, startTicks: number): Promise<boolean> {
  const stat = await readProcStat(pid);
  return stat !== null && stat.startTicks === startTicks && stat.state !== "Z";
}

/** Every live process of a session (the server, its children, the shim). */
export async function sessionMembers(session: number): Promise<ProcStat[]> {
  const members: ProcStat[] = [];
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return members;
  }
  await Promise.all(
    entries
      .filter((entry) => /^\d+$/.test(entry))
      .map(async (entry) => {
        const stat = await readProcStat(Number(entry));
        if (stat && stat.session === session && stat.state !== "Z") members.push(stat);
      }),
  );
  return members;
}

/** Resident memory of a process in bytes (VmRSS), 0 when unknown. */
export async function residentBytes(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Seconds since boot, from /proc/uptime. */
export async function uptimeSeconds(): Promise<number> {
  const text = await readFile("/proc/uptime", "utf8");
  return Number.parseFloat(text);
}
