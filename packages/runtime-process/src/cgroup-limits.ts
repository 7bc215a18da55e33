/**
 * Memory, CPU and pids limits for child processes through cgroup v2, when the
 * agent has a writable cgroup with the memory controller (root on a cgroup v2
 * host, or a delegated subtree such as systemd's `Delegate=yes`). Each
 * instance gets its own child cgroup; the shim moves itself into it before it
 * runs the server, so the server never runs unconfined.
 */

import { readFileSync } from "node:fs";
import { access, constants, mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Resources } from "@orchestrator/core";
import { OrchestratorError } from "@orchestrator/core";

/** Where cgroup v2 is mounted in this mount namespace, or null. */
export function findCgroup2Mount(mountinfo?: string): string | null {
  let text = mountinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/mountinfo", "utf8");
    } catch {
      return null;
    }
  }
  for (const line of text.split("\n")) {
    // "<id> <parent> <major:minor> <root> <mount point> <options> ... - <fstype> <source> <super options>"
    const [before, after] = line.split(" - ");
    if (!before || !after) continue;
    if (after.split(" ")[0] === "cgroup2") return before.split(" ")[4] ?? null;
  }
  return null;
}

/** The cgroup v2 directory this runtime puts instances under, and what it can limit. */
export class CgroupLimits {
  private constructor(
    /** The parent directory; instance cgroups are `<parent>/<instanceId>`. */
    readonly parent: string,
    /** Controllers enabled for the instance cgroups (always includes `memory`). */
    readonly controllers: ReadonlySet<string>,
    readonly pidsLimit: number,
  ) {}

  /**
   * Prepares `parent` (created when missing) for instance cgroups: the memory
   * controller must be available, and `cpu` and `pids` are used when they are.
   * Returns null when the memory controller cannot be enabled there.
   */
  static async open(parent: string, pidsLimit: number): Promise<CgroupLimits | null> {
    try {
      await mkdir(parent, { recursive: true });
      await access(parent, constants.W_OK);
      const available = await readWords(join(parent, "cgroup.controllers"));
      if (!available.has("memory")) return null;
      const wanted = ["memory", "cpu", "pids"].filter((name) => available.has(name));
      const enabled = await readWords(join(parent, "cgroup.subtree_control"));
      for (const name of wanted.filter((candidate) => !enabled.has(candidate))) {
        // One controller per write: a refused `cpu` must not cost us `memory`.
        const written = await writeFile(join(parent, "cgroup.subtree_control"), `+${name}`).then(
          () => true,
          () => false,
        );
        if (written) enabled.add(name);
      }
      if (!enabled.has("memory")) return null;
      return new CgroupLimits(
        parent,
        new Set(wanted.filter((name) => enabled.has(name))),
        pidsLimit,
      );
    } catch {
      return null;
    }
  }

  /**
   * Finds a usable parent automatically: `<cgroup2 mount>/orchestrator`, when
   * the mount's root offers the memory controller and is writable.
   */
  static async detect(pidsLimit: number): Promise<CgroupLimits | null> {
    const mount = findCgroup2Mount();
    if (!mount) return null;
    const rootControllers = await readWords(join(mount, "cgroup.controllers")).catch(
      () => new Set<string>(),
    );
    if (!rootControllers.has("memory")) return null;
    const rootLimits = await CgroupLimits.open(mount, pidsLimit);
    if (!rootLimits) return null;
    return CgroupLimits.open(join(mount, "orchestrator"), pidsLimit);
  }

  /** The instance's cgroup directory. */
  pathFor(instanceId: string): string {
    return join(this.parent, instanceId);
  }

  /** Creates the instance's cgroup with its limits; returns the `cgroup.procs` path for the shim. */
  async prepare(instanceId: string, resources: Resources): Promise<string> {
    const path = this.pathFor(instanceId);
    try {
      await mkdir(path, { recursive: true });
      const memory = String(Math.round(resources.memoryMb * 1024 * 1024));
      await writeFile(join(path, "memory.max"), memory);
      // No swap beyond the limit: otherwise memory.max only slows a leak down.
      await writeIfPresent(join(path, "memory.swap.max"), "0");
      if (this.controllers.has("cpu")) {
        const period = 100_000;
        const quota = Math.max(1000, Math.round(resources.cpu * period));
        await writeFile(join(path, "cpu.max"), `${quota} ${period}`);
      }
      if (this.controllers.has("pids")) {
        await writeFile(join(path, "pids.max"), String(this.pidsLimit));
      }
    } catch (error) {
      throw new OrchestratorError("INTERNAL", `cannot set up the cgroup of ${instanceId}`, {
        cause: error,
      });
    }
    return join(path, "cgroup.procs");
  }

  /** Memory in use by the instance (`memory.current`), or null when unreadable. */
  async memoryCurrent(instanceId: string): Promise<number | null> {
    try {
      const value = Number(
        await readFile(join(this.pathFor(instanceId), "memory.current"), "utf8"),
      );
      return Number.isFinite(value) ? value : null;
    } catch {
      return null;
    }
  }

  /** Kills every process of the instance's cgroup, even ones that left its session. */
  async killAll(instanceId: string): Promise<void> {
    await writeIfPresent(join(this.pathFor(instanceId), "cgroup.kill"), "1");
  }

  /** Removes the instance's cgroup (possible once it holds no process). */
  async release(instanceId: string): Promise<void> {
    await rmdir(this.pathFor(instanceId)).catch(() => {});
  }
}

async function readWords(path: string): Promise<Set<string>> {
  const text = await readFile(path, "utf8");
  return new Set(text.split(/\s+/).filter(Boolean));
}

async function writeIfPresent(path: string, value: string): Promise<void> {
  try {
    await access(path, constants.W_OK);
  } catch {
    return;
  }
  await writeFile(path, value).catch(() => {});
}
