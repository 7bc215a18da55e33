import type { Command, CommandType } from "../domain/command.js";

export type NewCommand = {
  nodeId: string;
  instanceId: string;
  type: CommandType;
  payload: Readonly<Record<string, unknown>>;
  epoch: number;
};

/**
 * Commands for nodes, written in the same transaction as the state change that
 * caused them, and delivered until acknowledged.
 */
export interface CommandOutbox {
  enqueue(command: NewCommand, at: Date): Promise<Command>;
  /** Commands for a node that are due (pending, or delivered without result and due again). */
  due(nodeId: string, now: Date, limit: number): Promise<Command[]>;
  /** Marks commands delivered and schedules a redelivery at `retryAt` unless acknowledged. */
  markDelivered(ids: readonly string[], retryAt: Date): Promise<void>;
  /** Records the agent's result of a command (first result wins). */
  complete(id: string, result: { ok: boolean; message?: string }, at: Date): Promise<void>;
  get(id: string): Promise<Command | null>;
}
