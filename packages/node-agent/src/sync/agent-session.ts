/**
 * The agent's session id: random per process, so the Brain tells two
 * processes with one node credential apart and refuses the second. One
 * exception keeps crash restarts fast: a process that finds, in its own state
 * dir, the session of a predecessor that ran on this same boot of this same
 * machine and is dead now, continues that session (the Brain would otherwise
 * make it wait for the dead one's silence window, long enough for the node to
 * be marked OFFLINE). A cloned machine has another boot id and a live
 * predecessor is alive: both get a new session and are refused as duplicates.
 */
import { randomBytes } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

interface StoredSession {
  sessionId: string;
  pid: number;
  bootId: string | null;
}

const SESSION_ID = /^[A-Za-z0-9_-]{8,64}$/;

export function newSessionId(): string {
  return randomBytes(16).toString("base64url");
}

/** Linux's per-boot random id; null elsewhere (then a session is never continued). */
async function bootId(): Promise<string | null> {
  try {
    return (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim() || null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists (another user's process).
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The session id for this process (continued from a dead predecessor on this
 * boot, or new), recorded in `dataDir/session.json` for the next one.
 */
export async function claimAgentSession(dataDir: string, fresh: string): Promise<string> {
  const path = join(dataDir, "session.json");
  const boot = await bootId();
  let stored: StoredSession | null = null;
  try {
    stored = JSON.parse(await readFile(path, "utf8")) as StoredSession;
  } catch {
    // first start, or unreadable: a new session
  }
  const continued =
    stored !== null &&
    boot !== null &&
    stored.bootId === boot &&
    typeof stored.sessionId === "string" &&
    SESSION_ID.test(stored.sessionId) &&
    Number.isSafeInteger(stored.pid) &&
    stored.pid > 0 &&
    stored.pid !== process.pid &&
    !alive(stored.pid);
  const sessionId = continued ? stored!.sessionId : fresh;
  const record: StoredSession = { sessionId, pid: process.pid, bootId: boot };
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, JSON.stringify(record), { mode: 0o600 });
  await rename(temporary, path);
  return sessionId;
}
