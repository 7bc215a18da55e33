/**
 * Instances: creation (validated against the template's variables), listing,
 * and the actions users take. An action changes the desired state and queues
 * the node's command in the same transaction; the agent's reports then move
 * the observed state.
 */
import {
  type Actor,
  assertConsoleLine,
  type Clock,
  ConflictError,
  type IdGenerator,
  type InstanceEvent,
  type InstanceFilter,
  type InstanceState,
  type NewInstance,
  NotFoundError,
  OrchestratorError,
  type Page,
  type Repositories,
  type RepositorySet,
  type StoredInstance,
  type TemplateVersion,
  ValidationError,
} from "@orchestrator/core";
import { checkVariables, REDACTED } from "@orchestrator/core/variables";
import type { LiveEvents } from "./live-events.js";
import type { NodeSignals } from "./node-signals.js";
import type { PendingPlacement, PlacementExplanations } from "./placement-explanations.js";

export const INSTANCE_ACTIONS = ["start", "stop", "restart", "kill", "input"] as const;
export type InstanceAction = (typeof INSTANCE_ACTIONS)[number];

const INSTANCE_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;

/** An instance as the API shows it: secret values masked, pending placement explained. */
export interface InstanceView extends Omit<StoredInstance, "variables"> {
  variables: Record<string, string>;
  pendingPlacement: PendingPlacement | null;
}

export interface CreateInstanceInput {
  template: string;
  version?: number;
  name: string;
  variables?: Record<string, string | number | boolean>;
}

/** Most creations written in one transaction (group commit). */
const MAX_CREATIONS_PER_TRANSACTION = 64;

/** A creation request waiting for its transaction. */
interface PendingCreation {
  input: CreateInstanceInput;
  at: Date;
  actor: Actor;
  ip: string | null;
  resolve(instance: StoredInstance): void;
  reject(error: unknown): void;
}

/** Created (with its event once appended), or refused. */
type CreationOutcome = { instance: StoredInstance; event?: InstanceEvent } | { error: Error };

/** Everything one transaction changed, published after it commits. */
interface Effects {
  events: InstanceEvent[];
  wakeNodes: Set<string>;
}

export class InstanceService {
  private readonly creations: PendingCreation[] = [];
  private writingCreations = false;

  constructor(
    private readonly repositories: Repositories,
    private readonly clock: Clock,
    private readonly ids: IdGenerator,
    private readonly live: LiveEvents,
    private readonly signals: NodeSignals,
    private readonly explanations: PlacementExplanations,
    private readonly wakeScheduler: () => void,
  ) {}

  /** Lists show no placement explanation (one read per instance); `detail` does. */
  view(instance: StoredInstance, pendingPlacement: PendingPlacement | null = null): InstanceView {
    const variables: Record<string, string> = { ...instance.variables };
    for (const name of instance.secretVariables) variables[name] = REDACTED;
    return { ...instance, variables, pendingPlacement };
  }

  /** One instance as the API shows it, with why it is not placed yet while it waits. */
  async detail(id: string): Promise<InstanceView> {
    const instance = await this.get(id);
    const pending = instance.state === "REQUESTED" ? await this.explanations.get(id) : null;
    return this.view(instance, pending);
  }

  list(filter: InstanceFilter): Promise<Page<StoredInstance>> {
    return this.repositories.instances.list(filter);
  }

  async get(id: string): Promise<StoredInstance> {
    const instance = await this.repositories.instances.get(id);
    if (!instance) throw new NotFoundError("instance", id);
    return instance;
  }

  /**
   * Creates an instance (REQUESTED), logs its creation event and audits it.
   * Requests are group-committed: see `writeCreations`.
   */
  async create(
    input: CreateInstanceInput,
    actor: Actor,
    ip: string | null,
  ): Promise<StoredInstance> {
    if (!INSTANCE_NAME.test(input.name)) {
      throw new ValidationError([
        {
          path: "name",
          message:
            "must be 1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit",
        },
      ]);
    }
    const at = this.clock.now();
    return new Promise<StoredInstance>((resolve, reject) => {
      this.creations.push({ input, at, actor, ip, resolve, reject });
      if (this.creations.length === 1 && !this.writingCreations) {
        // After the requests that arrived in this turn of the event loop have
        // queued theirs too (a SQLite transaction would otherwise finish
        // before the next request is even read, one commit each).
        setImmediate(() => void this.writeCreations());
      }
    });
  }

  /**
   * Group commit: creations that arrive while a transaction is being written
   * wait for it and then go into the next one together, so a burst of N
   * requests costs a few commits (and, on MySQL, a few turns of the event-seq
   * row lock) instead of N. A lone request waits for nothing but the end of
   * the current turn of the event loop.
   */
  private async writeCreations(): Promise<void> {
    if (this.writingCreations) return;
    this.writingCreations = true;
    try {
      while (this.creations.length > 0) {
        await this.writeCreationBatch(this.creations.splice(0, MAX_CREATIONS_PER_TRANSACTION));
      }
    } finally {
      this.writingCreations = false;
    }
  }

  private async writeCreationBatch(batch: PendingCreation[]): Promise<void> {
    let outcomes: CreationOutcome[];
    try {
      outcomes = await this.repositories.transaction(async (tx) => {
        // The template is read in the transaction that writes the instance:
        // what was validated is what is stored (and reads here cost no extra
        // round trip or read transaction). Once per template and batch.
        const versions = new Map<string, Promise<TemplateVersion | null>>();
        const out: CreationOutcome[] = [];
        for (const pending of batch) {
          const { template, version } = pending.input;
          const key = `${template}@${version ?? "latest"}`;
          let found = versions.get(key);
          if (!found) {
            found = tx.templates.getVersion(template, version);
            versions.set(key, found);
          }
          const instance = this.newInstance(pending, await found);
          // A refused request writes nothing; the others go on.
          if (instance instanceof Error) out.push({ error: instance });
          else out.push(await this.writeCreation(tx, pending, instance));
        }
        // The creation events last: on MySQL the first one takes the event-seq
        // row lock, which then serialises every other writer until the commit.
        for (const [index, outcome] of out.entries()) {
          if (!("instance" in outcome)) continue;
          const { instance } = outcome;
          const { at, actor } = batch[index]!;
          // Creation is logged too, so live views learn about new instances.
          outcome.event = await tx.events.append({
            instanceId: instance.id,
            from: "REQUESTED",
            to: "REQUESTED",
            at,
            reason: `created from ${instance.templateName}@${instance.templateVersion}`,
            actor,
          });
        }
        return out;
      });
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      // A write failed and the transaction was rolled back: write each alone,
      // so only the one at fault fails.
      for (const pending of batch) await this.writeCreationBatch([pending]);
      return;
    }
    const events: InstanceEvent[] = [];
    for (const outcome of outcomes)
      if ("instance" in outcome && outcome.event) events.push(outcome.event);
    if (events.length > 0) {
      this.publish({ events, wakeNodes: new Set() });
      this.wakeScheduler();
    }
    for (const [index, pending] of batch.entries()) {
      const outcome = outcomes[index]!;
      if ("error" in outcome) pending.reject(outcome.error);
      else pending.resolve(outcome.instance);
    }
  }

  /** The instance a request asks for, or why it cannot be created. */
  private newInstance(
    pending: PendingCreation,
    version: TemplateVersion | null,
  ): NewInstance | OrchestratorError {
    const { input, actor } = pending;
    if (!version) {
      return new NotFoundError(
        "template",
        input.version ? `${input.template}@${input.version}` : input.template,
      );
    }
    const { definition } = version;
    let checked: ReturnType<typeof checkVariables>;
    try {
      checked = checkVariables(definition.variables, input.variables ?? {});
    } catch (error) {
      // A stored definition that no longer validates (TEMPLATE_INVALID).
      if (error instanceof OrchestratorError) return error;
      throw error;
    }
    if (!checked.ok) return new ValidationError(checked.issues);
    const variables: Record<string, string> = {};
    for (const name of Object.keys(definition.variables)) {
      const value = checked.variables.get(name);
      if (value !== undefined) variables[name] = value;
    }
    const secretVariables = Object.entries(definition.variables)
      .filter(([, variable]) => variable.secret)
      .map(([name]) => name);
    return {
      id: this.ids.next("inst"),
      name: input.name,
      templateName: definition.name,
      templateVersion: version.version,
      desiredState: "running",
      state: "REQUESTED",
      nodeId: null,
      epoch: 0,
      ports: {},
      resources: definition.resources,
      variables,
      secretVariables,
      owner: actor.kind === "user" ? actor.id : null,
    };
  }

  private async writeCreation(
    tx: RepositorySet,
    pending: PendingCreation,
    input: NewInstance,
  ): Promise<{ instance: StoredInstance; event?: InstanceEvent }> {
    const { at, actor } = pending;
    const instance = await tx.instances.create(input, at);
    await tx.audit.append({
      at,
      actor,
      action: "instance.create",
      target: `instance:${instance.id}`,
      details: {
        template: instance.templateName,
        version: instance.templateVersion,
        name: instance.name,
      },
      source: pending.ip,
    });
    return { instance };
  }

  /** start / stop / restart / kill / input. */
  async act(
    id: string,
    action: InstanceAction,
    actor: Actor,
    ip: string | null,
    line?: string,
  ): Promise<StoredInstance> {
    if (action === "input") assertConsoleLine(line);
    const effects: Effects = { events: [], wakeNodes: new Set() };
    const result = await this.repositories.transaction(async (tx) => {
      effects.wakeNodes.clear();
      const instance = await tx.instances.get(id);
      if (!instance) throw new NotFoundError("instance", id);
      if (instance.desiredState === "destroyed") {
        throw new ConflictError(`instance ${id} is being destroyed`, {
          details: { state: instance.state },
        });
      }
      const command = commandFor(
        action,
        instance.state,
        instance.failure?.kind === "prepare-failed",
      );
      if (action === "input" && command === null) {
        throw new ConflictError(`cannot send input to an instance in state ${instance.state}`, {
          details: { state: instance.state },
        });
      }
      const desired = action === "stop" || action === "kill" ? "stopped" : "running";
      let updated = instance;
      if (instance.desiredState !== desired) {
        updated = await tx.instances.update(
          id,
          { state: instance.state, version: instance.version },
          { desiredState: desired },
          this.clock.now(),
        );
      }
      if (command && instance.nodeId) {
        await this.enqueue(tx, instance, command, action === "input" ? { line: line! } : {});
        effects.wakeNodes.add(instance.nodeId);
      }
      await tx.audit.append({
        at: this.clock.now(),
        actor,
        action: `instance.${action}`,
        target: `instance:${id}`,
        // Console input may hold anything (passwords typed into a console): never logged.
        details: { state: instance.state, command },
        source: ip,
      });
      return updated;
    });
    this.publish(effects);
    if (action !== "input" && result.state === "REQUESTED") this.wakeScheduler();
    return result;
  }

  /** Destroys an instance: at once when it was never placed, else through its node. */
  async destroy(id: string, actor: Actor, ip: string | null): Promise<StoredInstance> {
    const effects: Effects = { events: [], wakeNodes: new Set() };
    const result = await this.repositories.transaction(async (tx) => {
      effects.events = [];
      effects.wakeNodes.clear();
      const instance = await tx.instances.get(id);
      if (!instance) throw new NotFoundError("instance", id);
      if (instance.state === "DESTROYING" || instance.state === "DESTROYED") return instance;
      const now = this.clock.now();
      const { instance: updated, event } = await tx.instances.transition(id, {
        expected: { state: instance.state, version: instance.version },
        trigger: "destroy",
        reason: "destroy requested",
        actor,
        at: now,
        change: { desiredState: "destroyed" },
      });
      effects.events.push(event);
      if (updated.state === "DESTROYING" && instance.nodeId) {
        await this.enqueue(tx, instance, "destroy", {});
        effects.wakeNodes.add(instance.nodeId);
      }
      await tx.audit.append({
        at: now,
        actor,
        action: "instance.destroy",
        target: `instance:${id}`,
        details: { state: instance.state },
        source: ip,
      });
      return updated;
    });
    await this.explanations.clear(id);
    this.publish(effects);
    return result;
  }

  async events(id: string, afterSeq?: number, limit = 100): Promise<InstanceEvent[]> {
    await this.get(id);
    return this.repositories.events.listForInstance(id, {
      ...(afterSeq ? { afterSeq } : {}),
      limit,
    });
  }

  private async enqueue(
    tx: RepositorySet,
    instance: StoredInstance,
    type: "start" | "stop" | "restart" | "kill" | "input" | "destroy" | "prepare",
    payload: Record<string, unknown>,
  ): Promise<void> {
    await tx.commands.enqueue(
      {
        id: this.ids.next("cmd"),
        nodeId: instance.nodeId!,
        instanceId: instance.id,
        type,
        payload,
        epoch: instance.epoch,
      },
      this.clock.now(),
    );
  }

  private publish(effects: Effects): void {
    for (const event of effects.events) this.live.events.publish({ kind: "instance", ...event });
    for (const nodeId of effects.wakeNodes) this.signals.wake(nodeId);
  }
}

/** Which command an action sends from a state; null when the node has nothing to do. */
export function commandFor(
  action: InstanceAction,
  state: InstanceState,
  prepareFailed: boolean,
): "start" | "stop" | "restart" | "kill" | "input" | "prepare" | null {
  switch (action) {
    case "start":
      if (state === "FAILED" && prepareFailed) return "prepare";
      return state === "PREPARED" || state === "STOPPED" || state === "FAILED" ? "start" : null;
    case "stop":
      return state === "STARTING" || state === "RUNNING" ? "stop" : null;
    case "restart":
      if (state === "STARTING" || state === "RUNNING") return "restart";
      if (state === "FAILED" && prepareFailed) return "prepare";
      return state === "PREPARED" || state === "STOPPED" || state === "FAILED" ? "start" : null;
    case "kill":
      return state === "STARTING" || state === "RUNNING" || state === "STOPPING" ? "kill" : null;
    case "input":
      return state === "RUNNING" ? "input" : null;
  }
}
