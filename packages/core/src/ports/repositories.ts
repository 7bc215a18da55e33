import type { AuditRepository } from "./audit-repository.js";
import type { CommandOutbox } from "./command-outbox.js";
import type { EventRepository } from "./event-repository.js";
import type { InstanceRepository } from "./instance-repository.js";
import type { JoinTokenRepository } from "./join-token-repository.js";
import type { LeaseFence, LeaseRepository } from "./lease-repository.js";
import type { LiveRelayRepository } from "./live-relay-repository.js";
import type { NodeRepository } from "./node-repository.js";
import type { Plugin } from "./plugin.js";
import type { SessionRepository } from "./session-repository.js";
import type { TemplateRepository } from "./template-repository.js";
import type { TokenRepository } from "./token-repository.js";
import type { UserRepository } from "./user-repository.js";

/** One page of a listing; `next` is the opaque cursor of the following page (null on the last). */
export type Page<T> = { items: T[]; next: string | null };

/** Every repository, over one connection or one transaction. */
export interface RepositorySet {
  /** Templates and their immutable versions. */
  readonly templates: TemplateRepository;
  /** Nodes, their capacity, reservations and port allocations. */
  readonly nodes: NodeRepository;
  /** Instances: desired and observed state, placement. */
  readonly instances: InstanceRepository;
  /** The append-only event log (instance and node transitions) with a global `seq`. */
  readonly events: EventRepository;
  /** Users and their password hashes. */
  readonly users: UserRepository;
  /** API tokens, stored hashed. */
  readonly tokens: TokenRepository;
  /** Panel sessions, stored hashed. */
  readonly sessions: SessionRepository;
  /** One-time node join tokens, stored hashed. */
  readonly joinTokens: JoinTokenRepository;
  /** The append-only audit log. */
  readonly audit: AuditRepository;
  /** Commands for nodes, written with the state change that caused them. */
  readonly commands: CommandOutbox;
  /** Leases with fencing tokens, so several Brains never run the same loop at once. */
  readonly leases: LeaseRepository;
  /** Log lines and stats samples on their way between Brain replicas. */
  readonly liveRelay: LiveRelayRepository;
}

/** Options of one transaction. */
export interface TransactionOptions {
  /**
   * Checks, inside the transaction and before `work` runs, that this lease is
   * still held at this epoch; a fenced-out holder gets CONFLICT
   * (`details.reason: "lease-lost"`) and writes nothing.
   */
  fence?: LeaseFence;
  /** How many times a retryable failure (deadlock, lock timeout, busy) is tried in all (default 5). */
  maxAttempts?: number;
}

/**
 * The persistence port: repositories plus `transaction`. Capacity reservation,
 * state change, event and outbox command happen in one transaction.
 * `init()` prepares the store (migrations); `destroy()` closes it.
 */
export interface Repositories extends RepositorySet, Plugin {
  /**
   * Runs `work` in one transaction: everything it wrote through the
   * repositories it receives is committed together, or nothing is (when it
   * throws). Retryable failures (deadlock, lock timeout, busy) roll back and
   * run `work` again with jittered backoff, so `work` must have no side effects
   * outside the database. Inside `work`, use only the repositories passed in.
   */
  transaction<T>(
    work: (repositories: RepositorySet) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T>;
}
