/** What a placement decision says about itself, in numbers and in words. */

/** Nodes one filter rejected for one reason. */
export interface FilterCount {
  /**
   * The filter: `status`, `draining`, `memory`, `runtime`, `constraint`, `cpu`,
   * `disk`, `ports`, `anti-affinity`, `spread`, or a custom filter's name.
   */
  filter: string;
  count: number;
  /** Why, in words: "insufficient memory (need 4096 MB, best has 3072 MB)". */
  reason: string;
}

/** One scorer's opinion of the winner. */
export interface ScoreComponent {
  /** `binpack` or `spread` (the strategy), `affinity`, `anti-affinity`, `label-spread`, or a custom scorer. */
  scorer: string;
  /** -1..1, higher is better. */
  score: number;
  /** Its weight in the combined score. */
  weight: number;
}

export interface ScoreBreakdown {
  nodeId: string;
  /** Weighted mean of the components. */
  total: number;
  components: ScoreComponent[];
}

/**
 * Every node is counted once: rejected by the first filter it fails (in the
 * order of `filtered`), feasible, or not evaluated (enough candidates were
 * found before reaching it). `nodes = Σ filtered + feasible + notEvaluated`.
 */
export interface Explanation {
  /** Nodes in the snapshot. */
  nodes: number;
  /** Nodes given a verdict (`nodes - notEvaluated`). */
  evaluated: number;
  /** Evaluated nodes that passed every filter (the candidates that were scored). */
  feasible: number;
  /** Nodes the search did not reach; always 0 when nothing fits or in exhaustive mode. */
  notEvaluated: number;
  filtered: FilterCount[];
  /** The chosen node's scores; null when nothing fits. */
  winner: ScoreBreakdown | null;
  /** The whole explanation in words, one line per fact. */
  lines: string[];
}

/** An amount for people: integers as they are, fractions to two places. */
export function formatAmount(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Math.round(value * 100) / 100);
}

/** "1 node: …" / "4 nodes: …". */
export function countLine(count: number, reason: string): string {
  return `${count} ${count === 1 ? "node" : "nodes"}: ${reason}`;
}

export function formatScore(score: number): string {
  return score.toFixed(3);
}
