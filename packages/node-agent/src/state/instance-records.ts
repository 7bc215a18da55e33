/**
 * What the agent remembers about each instance it holds, beyond what the
 * runtime knows: placement epoch, last reported state, and the non-secret parts
 * of its template needed to act alone (restart policy, readiness, stop). One
 * JSON file in the state dir, replaced atomically. Secrets are never written.
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import type {
  InstanceState,
  ReadinessDefinition,
  RestartPolicy,
  RuntimeKind,
  StopDefinition,
} from "@orchestrator/core";

export interface InstanceRecord {
  instanceId: string;
  instanceName: string;
  epoch: number;
  state: InstanceState;
  runtime: RuntimeKind;
  templateName: string;
  templateVersion: number;
  restart: RestartPolicy;
  readiness: ReadinessDefinition;
  stop: StopDefinition;
  /** Times (ms) of automatic restarts, for the crash-loop guard. */
  restarts: number[];
}

export class InstanceRecords {
  private readonly records = new Map<string, InstanceRecord>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly path: string) {}

  static async open(path: string): Promise<InstanceRecords> {
    const records = new InstanceRecords(path);
    try {
      const parsed = JSON.parse(await readFile(path, "utf8")) as InstanceRecord[];
      for (const record of parsed) records.records.set(record.instanceId, record);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    return records;
  }

  get(instanceId: string): InstanceRecord | undefined {
    return this.records.get(instanceId);
  }

  all(): InstanceRecord[] {
    return [...this.records.values()];
  }

  async put(record: InstanceRecord): Promise<void> {
    this.records.set(record.instanceId, record);
    await this.flush();
  }

  async update(
    instanceId: string,
    changes: Partial<InstanceRecord>,
  ): Promise<InstanceRecord | undefined> {
    const record = this.records.get(instanceId);
    if (!record) return undefined;
    const updated = { ...record, ...changes };
    this.records.set(instanceId, updated);
    await this.flush();
    return updated;
  }

  async delete(instanceId: string): Promise<void> {
    if (this.records.delete(instanceId)) await this.flush();
  }

  /** Writes are serialised; each writes the whole map through a temporary file. */
  private flush(): Promise<void> {
    const snapshot = JSON.stringify([...this.records.values()]);
    this.writing = this.writing.then(async () => {
      const temporary = `${this.path}.tmp`;
      await writeFile(temporary, snapshot, { mode: 0o600 });
      await rename(temporary, this.path);
    });
    return this.writing;
  }
}
