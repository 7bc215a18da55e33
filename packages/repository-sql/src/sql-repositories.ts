/**
 * `SqlRepositories`: every repository port of `@orchestrator/core` over one
 * `Kysely<Database>`; the dialect (better-sqlite3 or mysql2) is the only
 * difference between SQLite and MySQL.
 */
import {
  type AuditRepository,
  type CommandOutbox,
  type EventRepository,
  type InstanceRepository,
  type JoinTokenRepository,
  type LeaseRepository,
  type LiveRelayRepository,
  type NodeRepository,
  OrchestratorError,
  type Repositories,
  type RepositorySet,
  type SessionRepository,
  type TemplateRepository,
  type TokenRepository,
  type TransactionOptions,
  UnavailableError,
  type UserRepository,
} from "@orchestrator/core";
import type { Kysely } from "kysely";
import { type OpenDatabaseOptions, openDatabase } from "./database-url.js";
import { migrateToLatest, migrationStatus } from "./migrator.js";
import type { Database } from "./schema.js";
import { createSecretCipher, PLAINTEXT_CIPHER } from "./secret-cipher.js";
import { SqlAuditRepository } from "./sql-audit-repository.js";
import { SqlCommandOutbox } from "./sql-command-outbox.js";
import { SqlEventRepository } from "./sql-event-repository.js";
import { SqlExecutor, type SqlScope } from "./sql-executor.js";
import { detectFlavor, flavorNamed, type SqlFlavor } from "./sql-flavor.js";
import { SqlInstanceRepository } from "./sql-instance-repository.js";
import { SqlJoinTokenRepository } from "./sql-join-token-repository.js";
import { SqlLeaseRepository } from "./sql-lease-repository.js";
import { SqlLiveRelayRepository } from "./sql-live-relay-repository.js";
import { SqlNodeRepository } from "./sql-node-repository.js";
import type { SqlRepositoriesConfig } from "./sql-repositories-config.js";
import { SqlSessionRepository } from "./sql-session-repository.js";
import { SqlTemplateRepository } from "./sql-template-repository.js";
import { SqlTokenRepository } from "./sql-token-repository.js";
import { SqlUserRepository } from "./sql-user-repository.js";

/** Every repository over one scope (the pool, or one transaction). */
class SqlRepositorySet implements RepositorySet {
  readonly templates: TemplateRepository;
  readonly nodes: NodeRepository;
  readonly instances: InstanceRepository;
  readonly events: EventRepository;
  readonly users: UserRepository;
  readonly tokens: TokenRepository;
  readonly sessions: SessionRepository;
  readonly joinTokens: JoinTokenRepository;
  readonly audit: AuditRepository;
  readonly commands: CommandOutbox;
  readonly leases: LeaseRepository;
  readonly liveRelay: LiveRelayRepository;

  constructor(scope: SqlScope) {
    this.templates = new SqlTemplateRepository(scope);
    this.nodes = new SqlNodeRepository(scope);
    this.instances = new SqlInstanceRepository(scope);
    this.events = new SqlEventRepository(scope);
    this.users = new SqlUserRepository(scope);
    this.tokens = new SqlTokenRepository(scope);
    this.sessions = new SqlSessionRepository(scope);
    this.joinTokens = new SqlJoinTokenRepository(scope);
    this.audit = new SqlAuditRepository(scope);
    this.commands = new SqlCommandOutbox(scope);
    this.leases = new SqlLeaseRepository(scope);
    this.liveRelay = new SqlLiveRelayRepository(scope);
  }
}

export class SqlRepositories implements Repositories {
  /** The kysely instance (for tooling: migrations, status, backups). */
  readonly db: Kysely<Database>;
  /** The dialect in use. */
  readonly flavor: SqlFlavor;
  readonly templates: TemplateRepository;
  readonly nodes: NodeRepository;
  readonly instances: InstanceRepository;
  readonly events: EventRepository;
  readonly users: UserRepository;
  readonly tokens: TokenRepository;
  readonly sessions: SessionRepository;
  readonly joinTokens: JoinTokenRepository;
  readonly audit: AuditRepository;
  readonly commands: CommandOutbox;
  readonly leases: LeaseRepository;
  readonly liveRelay: LiveRelayRepository;
  readonly #executor: SqlExecutor;
  readonly #migrate: boolean;
  readonly #destroyDatabase: boolean;

  constructor(config: SqlRepositoriesConfig) {
    this.db = config.db;
    const flavor = config.flavor
      ? flavorNamed(config.flavor)
      : detectFlavor(config.db as Kysely<unknown>);
    if (!flavor) {
      throw new OrchestratorError(
        "INTERNAL",
        'unknown SQL dialect: pass `flavor: "sqlite"` or `"mysql"`',
      );
    }
    this.flavor = flavor;
    this.#migrate = config.migrate ?? true;
    this.#destroyDatabase = config.destroyDatabase ?? false;
    this.#executor = new SqlExecutor({
      db: config.db,
      flavor,
      cipher:
        config.secretKey === undefined ? PLAINTEXT_CIPHER : createSecretCipher(config.secretKey),
      ...(config.retry ? { retry: config.retry } : {}),
      ...(config.random ? { random: config.random } : {}),
    });
    const root = new SqlRepositorySet(this.#executor.rootScope());
    this.templates = root.templates;
    this.nodes = root.nodes;
    this.instances = root.instances;
    this.events = root.events;
    this.users = root.users;
    this.tokens = root.tokens;
    this.sessions = root.sessions;
    this.joinTokens = root.joinTokens;
    this.audit = root.audit;
    this.commands = root.commands;
    this.leases = root.leases;
    this.liveRelay = root.liveRelay;
  }

  /**
   * Repositories over a database URL (`sqlite:<path>`, `sqlite::memory:`,
   * `mysql://...`); `destroy()` closes the connections.
   */
  static fromUrl(
    url: string,
    options: Omit<SqlRepositoriesConfig, "db" | "flavor"> & OpenDatabaseOptions = {},
  ): SqlRepositories {
    const { sqlite, mysql, ...config } = options;
    const { db, flavor } = openDatabase(url, {
      ...(sqlite ? { sqlite } : {}),
      ...(mysql ? { mysql } : {}),
    });
    return new SqlRepositories({ destroyDatabase: true, ...config, db, flavor });
  }

  /** Applies pending migrations (or, with `migrate: false`, checks there are none). */
  async init(): Promise<void> {
    if (this.#migrate) {
      await migrateToLatest(this.db, { flavor: this.flavor });
      return;
    }
    const status = await migrationStatus(this.db, { flavor: this.flavor });
    if (!status.upToDate) {
      throw new UnavailableError(
        status.unknown.length > 0
          ? `the database was migrated by a newer version (${status.unknown.join(", ")})`
          : `the database schema is not up to date (pending: ${status.pending.join(", ")}); run the migrations`,
        { details: { pending: status.pending, unknown: status.unknown }, retryable: false },
      );
    }
  }

  /** Closes the database when this object owns it. */
  async destroy(): Promise<void> {
    if (this.#destroyDatabase) await this.db.destroy();
  }

  transaction<T>(
    work: (repositories: RepositorySet) => Promise<T>,
    options: TransactionOptions = {},
  ): Promise<T> {
    return this.#executor.transaction(async (scope) => {
      const repositories = new SqlRepositorySet(scope);
      if (options.fence) await repositories.leases.assertHeld(options.fence);
      return work(repositories);
    }, options.maxAttempts);
  }
}
