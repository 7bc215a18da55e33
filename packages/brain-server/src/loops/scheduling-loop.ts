/**
 * Places REQUESTED instances: one snapshot of the cluster, one batch through
 * the scheduler, then per placement one transaction that reserves capacity and
 * ports, moves the instance to SCHEDULED (new epoch) and queues its prepare
 * command. Unplaceable instances stay REQUESTED with the explanation kept.
 */
import {
  type Clock,
  type IdGenerator,
  type InstanceEvent,
  type LeaseFence,
  OrchestratorError,
  type Repositories,
  type StoredInstance,
  type TemplateDefinition,
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
    const events: InstanceEvent[] = [];
    const wake = new Set<string>();
    let placed = 0;
    for (const [index, result] of results.entries()) {
      const instance = candidates[index]!;
      if (!result.placed) {
        this.explanations.set(instance.id, {
          at: this.clock.now(),
          explanation: result.explanation,
        });
        continue;
      }
      try {
        const event = await this.repositories.transaction(
          async (tx) => {
            const now = this.clock.now();
            await tx.nodes.reserve(
              result.nodeId,
              instance.id,
              instance.resources,
              Object.values(result.ports),
              now,
            );
            const { instance: scheduled, event } = await tx.instances.transition(instance.id, {
              expected: { state: "REQUESTED", version: instance.version },
              trigger: "schedule",
              reason: `placed on ${result.nodeId}`,
              actor: { kind: "system", id: "scheduler" },
              at: now,
              change: { nodeId: result.nodeId, epoch: instance.epoch + 1, ports: result.ports },
            });
            await tx.commands.enqueue(
              {
                id: this.ids.next("cmd"),
                nodeId: result.nodeId,
                instanceId: instance.id,
                type: "prepare",
                payload: {},
                epoch: scheduled.epoch,
              },
              now,
            );
            return event;
          },
          { fence: { ...fence, now: this.clock.now() } },
        );
        events.push(event);
        wake.add(result.nodeId);
        this.explanations.delete(instance.id);
        placed += 1;
      } catch (error) {
        // Capacity or ports taken meanwhile, or the instance moved: next round retries.
        if (!OrchestratorError.hasCode(error, "CONFLICT")) throw error;
        this.log.debug(
          { instanceId: instance.id, err: error },
          "placement lost a race; retrying next round",
        );
      }
    }
    for (const event of events) this.live.events.publish({ kind: "instance", ...event });
    for (const nodeId of wake) this.signals.wake(nodeId);
    this.latency?.observe({}, (performance.now() - started) / 1000);
    return placed;
  }
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
