import type { Command, CommandStatus, CommandType } from "../domain/command.js";

/** A command to enqueue; the caller chooses its id (the agent deduplicates by it). */
export interface NewCommand {
  id: string;
  nodeId: string;
  instanceId: string;
  type: CommandType;
  payload: Readonly<Record<string, unknown>>;
  /** The instance's placement epoch. */
  epoch: number;
}

/** An agent's answer to a command. */
export interface CommandResult {
  ok: boolean;
  message?: string;
}

/** A command as the outbox stores it: with its delivery and result. */
export interface OutboxCommand extends Command {
  /** The first result received, or null while none came. */
  result: { ok: boolean; message: string | null } | null;
  /** Last delivery time, or null while never delivered. */
  deliveredAt: Date | null;
  /** When the result arrived (or the command expired), or null. */
  completedAt: Date | null;
}

/**
 * Commands for nodes, written in the same transaction as the state change that
 * caused them, and delivered until acknowledged.
 */
export interface CommandOutbox {
  /** Adds a pending command, due at once. CONFLICT when the id exists. */
  enqueue(command: NewCommand, at: Date): Promise<OutboxCommand>;
  /** One command, or null. */
  get(id: string): Promise<OutboxCommand | null>;
  /**
   * Atomically takes a node's due commands (pending, or delivered without a
   * result and due again), oldest first: marks them delivered, counts the
   * attempt and makes them due again at `redeliverAt` unless a result comes.
   * Concurrent callers never get the same command in one round.
   */
  claimDue(
    nodeId: string,
    options: { now: Date; limit: number; redeliverAt: Date },
  ): Promise<OutboxCommand[]>;
  /**
   * Records a result; the first one wins (`first: false` for repeats, which
   * change nothing). With `nodeId`, a command of another node is NOT_FOUND.
   */
  complete(
    id: string,
    result: CommandResult,
    at: Date,
    options?: { nodeId?: string },
  ): Promise<{ command: OutboxCommand; first: boolean }>;
  /**
   * Fails the commands that will not be answered: delivered `maxAttempts`
   * times and due again by `now`, or (with `createdBefore`) created before it.
   * Returns them, so the caller can surface FAILED instances.
   */
  expire(options: {
    now: Date;
    maxAttempts: number;
    createdBefore?: Date;
  }): Promise<OutboxCommand[]>;
  /** Commands of one instance, oldest first. */
  listForInstance(instanceId: string, options?: { limit?: number }): Promise<OutboxCommand[]>;
  /** How many commands are in each status (outbox depth for metrics). */
  countByStatus(): Promise<Partial<Record<CommandStatus, number>>>;
}
