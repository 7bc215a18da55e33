/**
 * Exit statuses in shell convention, shared by every runtime so that a crash
 * reads the same from a process and from a container: a death by signal N is
 * status 128 + N (what `sh`, `docker-init` and Docker's `ExitCode` report).
 */
import { constants } from "node:os";

const SIGNAL_NAMES = new Map<number, string>(
  Object.entries(constants.signals).map(([name, number]) => [number, name]),
);

/** The signal's number on this platform (`SIGKILL` → 9), or null for an unknown name. */
export function signalNumber(signal: string): number | null {
  const number = (constants.signals as Record<string, number | undefined>)[signal];
  return number ?? null;
}

/** The signal name an exit status stands for (`137` → `SIGKILL`), or null for a plain exit. */
export function exitStatusSignal(exitCode: number | null): string | null {
  if (exitCode === null || exitCode <= 128 || exitCode > 128 + 64) return null;
  return SIGNAL_NAMES.get(exitCode - 128) ?? null;
}

/** The exit status of a death by `signal` (`SIGKILL` → 137). */
export function signalExitStatus(signal: string): number | null {
  const number = signalNumber(signal);
  return number === null ? null : 128 + number;
}
