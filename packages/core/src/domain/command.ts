/** Kinds of command the Brain sends to a node. */
export const COMMAND_TYPES = [
  "prepare",
  "start",
  "stop",
  "restart",
  "kill",
  "destroy",
  "input",
] as const;
export type CommandType = (typeof COMMAND_TYPES)[number];

export type CommandStatus = "pending" | "delivered" | "succeeded" | "failed";

/** A command in the outbox, written in the same transaction as the state change that caused it. */
export interface Command {
  id: string;
  nodeId: string;
  instanceId: string;
  type: CommandType;
  payload: Readonly<Record<string, unknown>>;
  /** The instance's placement epoch; an agent refuses commands older than one it has seen. */
  epoch: number;
  status: CommandStatus;
  attempts: number;
  nextAttemptAt: Date;
  createdAt: Date;
}
