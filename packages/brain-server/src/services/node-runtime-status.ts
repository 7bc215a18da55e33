/**
 * Which runtimes of each node answer right now, as the agents report them
 * (a stopped or hung Docker engine); a sync without a status means every
 * runtime answers. The replica an agent syncs with keeps it in memory and,
 * when it changes, on the node row; the scheduling Brain (maybe another
 * replica) `load`s the rows of each round. The scheduler skips a node whose
 * runtime of the needed kind is unavailable (`runtimeAvailabilityFilter`).
 */
import type { Node, RuntimeKind, RuntimeStatus } from "@orchestrator/core";
import type { SchedulerFilter } from "@orchestrator/scheduler";

export type RuntimeStatusChange = {
  nodeId: string;
  kind: RuntimeKind;
  available: boolean;
  reason: string | null;
};

/** A node row's unavailable runtimes, as the agents report them (`RuntimeStatus`). */
export function runtimeStatusesOf(node: Node): RuntimeStatus[] {
  return node.unavailableRuntimes.map((runtime) => ({
    kind: runtime.kind,
    available: false,
    ...(runtime.reason === null ? {} : { reason: runtime.reason }),
    since: runtime.since.toISOString(),
  }));
}

export class NodeRuntimeStatus {
  /** Only nodes with at least one unavailable runtime. */
  private readonly unavailable = new Map<string, RuntimeStatus[]>();

  /**
   * Records what a sync said (`undefined`: nothing unavailable). Returns the
   * runtimes whose availability changed, for logs and metrics.
   */
  report(nodeId: string, statuses: readonly RuntimeStatus[] | undefined): RuntimeStatusChange[] {
    const before = this.unavailable.get(nodeId) ?? [];
    const now = (statuses ?? []).filter((status) => !status.available);
    if (now.length === 0) this.unavailable.delete(nodeId);
    else
      this.unavailable.set(
        nodeId,
        now.map((status) => ({ ...status })),
      );
    const changes: RuntimeStatusChange[] = [];
    for (const status of now)
      if (!before.some((old) => old.kind === status.kind))
        changes.push({
          nodeId,
          kind: status.kind,
          available: false,
          reason: status.reason ?? null,
        });
    for (const old of before)
      if (!now.some((status) => status.kind === old.kind))
        changes.push({ nodeId, kind: old.kind, available: true, reason: null });
    return changes;
  }

  /**
   * Takes what the node rows say (written by whichever replica the agents
   * sync with): the scheduling Brain calls it with the nodes of each round.
   */
  load(nodes: readonly Node[]): void {
    for (const node of nodes) {
      if (node.unavailableRuntimes.length === 0) this.unavailable.delete(node.id);
      else this.unavailable.set(node.id, runtimeStatusesOf(node));
    }
  }

  /** The node's unavailable runtimes (empty when all answer or nothing is known). */
  unavailableOf(nodeId: string): RuntimeStatus[] {
    return (this.unavailable.get(nodeId) ?? []).map((status) => ({ ...status }));
  }

  isUnavailable(nodeId: string, kind: RuntimeKind): boolean {
    return this.unavailable.get(nodeId)?.some((status) => status.kind === kind) ?? false;
  }

  forget(nodeId: string): void {
    this.unavailable.delete(nodeId);
  }

  /** Nodes with something unavailable (a metric). */
  get affectedNodes(): number {
    return this.unavailable.size;
  }
}

/**
 * A scheduler filter over `status`: rejects a node when the runtime the
 * request needs is unavailable there ("runtime docker unavailable"). A request
 * naming no runtime (its template runs on several) needs one of
 * `runtimesOf(request.id)`: the node is rejected when every one of those it
 * offers is unavailable.
 */
export function runtimeAvailabilityFilter(
  status: NodeRuntimeStatus,
  runtimesOf: (requestId: string) => readonly RuntimeKind[] = () => [],
): SchedulerFilter {
  return {
    name: "runtime-availability",
    check(view, request) {
      const nodeId = view.node.id;
      if (request.runtime !== undefined)
        return status.isUnavailable(nodeId, request.runtime)
          ? `runtime ${request.runtime} unavailable`
          : undefined;
      const wanted = request.id === undefined ? [] : runtimesOf(request.id);
      const offered = (view.node.runtimes ?? []).filter(
        (kind) => wanted.length === 0 || wanted.includes(kind),
      );
      if (offered.length === 0) return undefined;
      const down = offered.filter((kind) => status.isUnavailable(nodeId, kind));
      return down.length === offered.length ? `runtime ${down.join(", ")} unavailable` : undefined;
    },
  };
}
