/**
 * Places REQUESTED instances: one snapshot of the cluster, one batch through
 * the scheduler, then one transaction per chunk of placements that, for each,
 * reserves capacity and ports, moves the instance to SCHEDULED (new epoch) and
 * queues its prepare command. Unplaceable instances stay REQUESTED with the
 * explanation kept.
 */
import {
  type Clock,
  type IdGenerator,
  type InstanceEvent,
  InstanceLifecycle,
  type LeaseFence,
  type Node,
  OrchestratorError,
  type Repositories,
  type RepositorySet,
  type StoredInstance,
  type TemplateDefinition,
  type TransitionResult,
  templateRuntimes,
} from "@orchestrator/core";
import {
  createScheduler,
  nodeSnapshot,
  type PlacementRequest,
  type SchedulerOptions,
} from "@orchestrator/scheduler";
import type { FastifyBaseLogger } from "fastify";
import type { Histogram } from "../metrics/metrics-registry.js";
import type { LiveEvents } from "../services/live-events.js";
import type { NodeSignals } from "../services/node-signals.js";
import type { PlacementExplanations } from "../services/placement-explanations.js";

/** Instances considered per round. */
const BATCH = 500;
/** Placements written per transaction. */
const CHUNK = 100;
/** Transactions written at once (placements on different nodes). */
const LANES = 4;

export class SchedulingRound {
  constructor(
    private readonly repositories: Repositories,
    private readonly clock: Clock,
    private readonly ids: IdGenerator,
    private readonly options: SchedulerOptions,
    private readonly explanations: PlacementExplanations,
    private readonly live: LiveEvents,
    private readonly signals: NodeSignals,
    private readonly log: FastifyBaseLogger,
    private readonly latency: Histogram | null = null,
    /** Sees the nodes of each round before placing (filters that keep their own view of them). */
    private readonly onNodes: (nodes: readonly Node[]) => void = () => undefined,
  ) {}

  /** One round. Returns how many instances were placed. */
  async run(fence: LeaseFence): Promise<number> {
    const { items } = await this.repositories.instances.list({ state: "REQUESTED", limit: BATCH });
    const pending = items.filter((instance) => instance.desiredState !== "destroyed");
    if (pending.length === 0) return 0;
    const started = performance.now();

    const [nodes, allocations] = await Promise.all([
      this.repositories.nodes.list(),
      this.repositories.nodes.listPortAllocations(),
    ]);
    this.onNodes(nodes);
    const portsByNode = new Map<string, number[]>();
    for (const allocation of allocations) {
      const list = portsByNode.get(allocation.nodeId) ?? [];
      list.push(allocation.port);
      portsByNode.set(allocation.nodeId, list);
    }
    // Resources come from the nodes' reservations and ports from the store's
    // allocations (instances' and the hosts'): the authority `reserve` checks.
    // Templates declare no anti-affinity yet, so per-template counts are not loaded.
    const snapshot = nodes.map((node) => ({
      ...nodeSnapshot(node),
      usedPorts: portsByNode.get(node.id) ?? [],
    }));

    const definitions = new Map<string, TemplateDefinition | null>();
    const requests: PlacementRequest[] = [];
    const candidates: StoredInstance[] = [];
    for (const instance of pending) {
      const key = `${instance.templateName}@${instance.templateVersion}`;
      if (!definitions.has(key)) {
        const version = await this.repositories.templates.getVersion(
          instance.templateName,
          instance.templateVersion,
        );
        definitions.set(key, version?.definition ?? null);
      }
      const definition = definitions.get(key);
      if (!definition) continue;
      candidates.push(instance);
      requests.push(placementRequest(instance, definition));
    }

    const results = createScheduler(snapshot, this.options).placeBatch(requests);
    const placements: Placement[] = [];
    for (const [index, result] of results.entries()) {
      const instance = candidates[index]!;
      if (result.placed) placements.push({ instance, nodeId: result.nodeId, ports: result.ports });
      else
        await this.explanations.set(instance.id, {
          at: this.clock.now(),
          explanation: result.explanation,
        });
    }
    const events: InstanceEvent[] = [];
    const wake = new Set<string>();
    const done = (placement: Placement, event: InstanceEvent) => {
      events.push(event);
      wake.add(placement.nodeId);
    };
    // Placements are written CHUNK to a transaction: one commit (and, on MySQL,
    // one turn of the event-seq row lock) for many instances instead of one
    // each, which is what lets the loop keep up with the API. Up to LANES
    // transactions are written side by side (consecutive runs): they touch
    // different instance rows and meet only at their ends, where each adds its
    // reservations to the nodes' rows and appends its events (MySQL waits on
    // round trips, not on a core; on SQLite they simply take turns).
    const lanes: Placement[][] = [];
    const perLane = Math.max(CHUNK, Math.ceil(placements.length / LANES));
    for (let start = 0; start < placements.length; start += perLane) {
      lanes.push(placements.slice(start, start + perLane));
    }
    const state = { leaseLost: false };
    // Every lane ends before the round does: what the others committed is
    // announced even when one lane fails (its error then ends the round).
    const outcomes = await Promise.allSettled(
      lanes.map((lane) => this.writeLane(lane, fence, state, done)),
    );
    for (const event of events) this.live.events.publish({ kind: "instance", ...event });
    for (const nodeId of wake) this.signals.wake(nodeId);
    for (const event of events) await this.explanations.clear(event.instanceId);
    this.latency?.observe({}, (performance.now() - started) / 1000);
    const failed = outcomes.find((outcome) => outcome.status === "rejected");
    if (failed) throw failed.reason;
    return events.length;
  }

  /** Writes one lane's placements, CHUNK to a transaction. */
  private async writeLane(
    placements: Placement[],
    fence: LeaseFence,
    state: { leaseLost: boolean },
    done: (placement: Placement, event: InstanceEvent) => void,
  ): Promise<void> {
    for (let start = 0; start < placements.length && !state.leaseLost; start += CHUNK) {
      const chunk = placements.slice(start, start + CHUNK);
      try {
        const written = await this.repositories.transaction((tx) => this.write(tx, chunk), {
          fence: { ...fence, now: this.clock.now() },
        });
        for (const [index, event] of written.entries()) done(chunk[index]!, event);
      } catch (error) {
        if (!OrchestratorError.hasCode(error, "CONFLICT")) throw error;
        if (isLeaseLost(error)) {
          state.leaseLost = true; // another Brain schedules now: it places the rest
          return;
        }
        // One of them lost a race (capacity or ports taken meanwhile, or the
        // instance changed): the chunk was rolled back, so write its
        // placements one by one and let only the losers wait for next round.
        for (const placement of chunk) {
          try {
            const [event] = await this.repositories.transaction(
              (tx) => this.write(tx, [placement]),
              { fence: { ...fence, now: this.clock.now() } },
            );
            done(placement, event!);
          } catch (single) {
            if (!OrchestratorError.hasCode(single, "CONFLICT")) throw single;
            if (isLeaseLost(single)) {
              state.leaseLost = true;
              return;
            }
            this.log.debug(
              { instanceId: placement.instance.id, err: single },
              "placement lost a race; retrying next round",
            );
          }
        }
      }
    }
  }

  /**
   * For each placement: reserves capacity and ports, moves the instance to
   * SCHEDULED (new epoch) and queues its prepare command; then appends the
   * SCHEDULED events, last, because on MySQL the first append takes the
   * event-seq row lock that serialises every other writer until the commit.
   */
  private async write(tx: RepositorySet, placements: Placement[]): Promise<InstanceEvent[]> {
    const now = this.clock.now();
    const moves: Array<{ instanceId: string; event: TransitionResult["event"] }> = [];
    for (const { instance, nodeId, ports } of placements) {
      await tx.nodes.reserve(nodeId, instance.id, instance.resources, Object.values(ports), now);
      // The lifecycle table decides (and words) the move, as `transition` would.
      const move = InstanceLifecycle.apply("REQUESTED", "schedule", {
        reason: `placed on ${nodeId}`,
        actor: { kind: "system", id: "scheduler" },
        at: now,
      });
      const scheduled = await tx.instances.update(
        instance.id,
        { state: "REQUESTED", version: instance.version },
        { state: move.state, nodeId, epoch: instance.epoch + 1, ports },
        now,
      );
      await tx.commands.enqueue(
        {
          id: this.ids.next("cmd"),
          nodeId,
          instanceId: instance.id,
          type: "prepare",
          payload: {},
          epoch: scheduled.epoch,
        },
        now,
      );
      moves.push({ instanceId: instance.id, event: move.event });
    }
    const events: InstanceEvent[] = [];
    for (const { instanceId, event } of moves) {
      events.push(await tx.events.append({ instanceId, ...event }));
    }
    return events;
  }
}

interface Placement {
  instance: StoredInstance;
  nodeId: string;
  ports: Record<string, number>;
}

function isLeaseLost(error: unknown): boolean {
  return (error as OrchestratorError).details?.reason === "lease-lost";
}

/** What the scheduler needs to know about an instance of a template. */
export function placementRequest(
  instance: StoredInstance,
  definition: TemplateDefinition,
): PlacementRequest {
  const runtimes = templateRuntimes(definition);
  return {
    id: instance.id,
    templateName: instance.templateName,
    resources: instance.resources,
    ports: definition.ports.map((port) => ({
      name: port.name,
      protocol: port.protocol,
      ...(port.port === undefined ? {} : { port: port.port }),
    })),
    ...(runtimes.length === 1 ? { runtime: runtimes[0]! } : {}),
  };
}
