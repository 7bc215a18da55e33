/**
 * The node credential the Brain issued at join, kept in a file readable only by
 * the agent's user (mode 0600), written atomically.
 */
import { chmod, readFile, rename, writeFile } from "node:fs/promises";

export interface NodeCredential {
  brainUrl: string;
  nodeId: string;
  credential: string;
}

export async function readCredential(path: string): Promise<NodeCredential | null> {
  try {
    const parsed = JSON.parse(await readFile(path, "utf8")) as Partial<NodeCredential>;
    if (
      typeof parsed.nodeId !== "string" ||
      typeof parsed.credential !== "string" ||
      typeof parsed.brainUrl !== "string"
    ) {
      return null;
    }
    return { brainUrl: parsed.brainUrl, nodeId: parsed.nodeId, credential: parsed.credential };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

export async function writeCredential(path: string, credential: NodeCredential): Promise<void> {
  const temporary = `${path}.tmp`;
  await writeFile(temporary, `${JSON.stringify(credential)}\n`, { mode: 0o600 });
  await chmod(temporary, 0o600); // the umask may have widened a pre-existing file
  await rename(temporary, path);
}
