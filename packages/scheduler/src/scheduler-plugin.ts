/**
 * Extension points: your own filters and scorers run after the built-in ones,
 * on the nodes the pipeline evaluates. They see a read-only view of a node as
 * it is at that point of a batch (earlier placements of the batch included).
 */
import type { Resources } from "@orchestrator/core";
import type { NodeSnapshot } from "./node-snapshot.js";
import type { PlacementRequest } from "./placement-request.js";

export interface NodeView {
  /** The node as given in the snapshot (never changed). */
  readonly node: NodeSnapshot;
  /** Effective capacity: overcommit applied to memory and CPU. */
  readonly capacity: Resources;
  /** Capacity minus what is allocated, including earlier placements of the batch. */
  readonly free: Resources;
  /** Free ports left in the node's dynamic range. */
  readonly freePortCount: number;
  /** Is `port` neither reserved nor used on the node? */
  isPortFree(port: number): boolean;
  /** How many instances of `templateName` the node runs. */
  instancesOf(templateName: string): number;
}

/** A hard rule: a node passes or is rejected with a reason. */
export interface SchedulerFilter {
  /** Shown in explanations as the filter that rejected nodes. */
  readonly name: string;
  /**
   * `undefined` when the node passes; otherwise why not, in words. Nodes
   * rejected with the same words are counted together ("3 nodes: <words>").
   */
  check(node: NodeView, request: PlacementRequest): string | undefined;
}

/** A soft preference, combined with the others as a weighted mean. */
export interface SchedulerScorer {
  /** Shown in the winner's score breakdown. */
  readonly name: string;
  /** Its weight in the combined score (default 1). */
  readonly weight?: number;
  /** A score in -1..1 (higher is better), or null when it has no opinion on this node. */
  score(node: NodeView, request: PlacementRequest): number | null;
}
