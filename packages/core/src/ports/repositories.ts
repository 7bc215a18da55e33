import type { AuditRepository } from "./audit-repository.js";
import type { CommandOutbox } from "./command-outbox.js";
import type { EventRepository } from "./event-repository.js";
import type { InstanceRepository } from "./instance-repository.js";
import type { LeaseRepository } from "./lease-repository.js";
import type { NodeRepository } from "./node-repository.js";
import type { Plugin } from "./plugin.js";
import type { TemplateRepository } from "./template-repository.js";
import type { TokenRepository, UserRepository } from "./user-repository.js";

/** Every repository, over one connection or one transaction. */
export interface RepositorySet {
  templates: TemplateRepository;
  nodes: NodeRepository;
  instances: InstanceRepository;
  events: EventRepository;
  users: UserRepository;
  tokens: TokenRepository;
  audit: AuditRepository;
  commands: CommandOutbox;
  leases: LeaseRepository;
}

/**
 * The persistence port: repositories plus `transaction`. Capacity reservation,
 * state change, event and outbox command happen in one transaction.
 */
export interface Repositories extends RepositorySet, Plugin {
  /**
   * Runs `work` in one transaction: everything it wrote is committed together,
   * or nothing is (when it throws). Retryable failures (deadlock) are retried.
   */
  transaction<T>(work: (repositories: RepositorySet) => Promise<T>): Promise<T>;
}
