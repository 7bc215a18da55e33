/**
 * What the Brain broadcasts to live streams: logged events (instance and node
 * transitions, with their seq), log lines, and revocations that must end the
 * streams of a user, token or session at once.
 */
import type { LoggedEvent } from "@orchestrator/core";
import { EventHub } from "../events/event-hub.js";
import { Viewers } from "./viewers.js";

export interface LogLineEvent {
  instanceId: string;
  stream: "stdout" | "stderr";
  line: string;
  at: string;
}

export interface Revocation {
  /** Every stream (shutdown). */
  all?: boolean;
  userId?: string;
  tokenId?: string;
  sessionId?: string;
}

/** Lines kept for other replicas between two relay rounds (beyond that, they are dropped). */
const MAX_FORWARDED = 10_000;

export class LiveEvents {
  readonly events = new EventHub<LoggedEvent>();
  readonly logs = new EventHub<LogLineEvent>();
  readonly revocations = new EventHub<Revocation>();
  /** Recent lines per watched or recently watched instance, for the backlog of a new viewer. */
  private readonly backlogs = new Map<string, LogLineEvent[]>();
  /**
   * Log viewers (agents push lines only for watched instances). The first one
   * makes the agent send its recent lines again: an older backlog here would
   * duplicate them.
   */
  readonly viewers = new Viewers({ first: (instanceId) => this.backlogs.delete(instanceId) });
  /** Lines received here for viewers on other replicas, until `LiveRelay` takes them. */
  private forwarded: LogLineEvent[] = [];

  constructor(private readonly backlogLines = 200) {}

  revoke(revocation: Revocation): void {
    this.revocations.publish(revocation);
  }

  /** Counts a log viewer until the returned function is called. */
  watch(instanceId: string): () => void {
    return this.viewers.add(instanceId);
  }

  /** Instances whose logs agents must push: watched here or on another replica. */
  watchedInstances(): string[] {
    return this.viewers.all();
  }

  /** Records lines pushed by an agent, fans them out, and keeps those other replicas watch for them. */
  pushLogs(lines: readonly LogLineEvent[]): void {
    for (const line of lines) {
      if (this.viewers.watchedRemotely(line.instanceId) && this.forwarded.length < MAX_FORWARDED) {
        this.forwarded.push(line);
      }
    }
    this.deliver(lines);
  }

  /** Lines to hand to other replicas since the last call. */
  takeForwarded(): LogLineEvent[] {
    const lines = this.forwarded;
    this.forwarded = [];
    return lines;
  }

  /** Records lines (from an agent, or relayed by another replica) and fans them out here. */
  deliver(lines: readonly LogLineEvent[]): void {
    for (const line of lines) {
      let backlog = this.backlogs.get(line.instanceId);
      if (!backlog) {
        backlog = [];
        this.backlogs.set(line.instanceId, backlog);
      }
      backlog.push(line);
      if (backlog.length > this.backlogLines) backlog.splice(0, backlog.length - this.backlogLines);
      this.logs.publish(line);
    }
  }

  backlog(instanceId: string): LogLineEvent[] {
    return [...(this.backlogs.get(instanceId) ?? [])];
  }
}
