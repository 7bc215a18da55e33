/**
 * The instance state diagram, computed from core's transition table (the one
 * source of truth): nodes are the states, edges the (state, trigger) → target
 * entries. Only the placement of the boxes is chosen here.
 */
import {
  INSTANCE_STATES,
  INSTANCE_TRANSITIONS,
  type InstanceState,
} from "@orchestrator/core/lifecycle";

export interface DiagramEdge {
  from: InstanceState;
  to: InstanceState;
  triggers: string[];
}

export interface DiagramBox {
  state: InstanceState;
  x: number;
  y: number;
}

// Columns follow the happy path left to right; failure states sit below.
const LAYOUT: Partial<Record<InstanceState, [number, number]>> = {
  REQUESTED: [0, 0],
  SCHEDULED: [1, 0],
  PREPARING: [2, 0],
  PREPARED: [3, 0],
  STARTING: [4, 0],
  RUNNING: [5, 0],
  STOPPING: [5, 1],
  STOPPED: [4, 1],
  DESTROYING: [2, 2],
  DESTROYED: [0, 2],
  FAILED: [2, 1],
  LOST: [3, 2],
};

export const BOX = { width: 120, height: 36, gapX: 40, gapY: 70 } as const;

/** Every transition of the table, grouped by (from, to) with its triggers. */
export function diagramEdges(): DiagramEdge[] {
  const edges = new Map<string, DiagramEdge>();
  for (const from of INSTANCE_STATES) {
    const row = INSTANCE_TRANSITIONS[from] as Readonly<Record<string, readonly InstanceState[]>>;
    for (const [trigger, targets] of Object.entries(row)) {
      for (const to of targets) {
        const key = `${from}->${to}`;
        const edge = edges.get(key) ?? { from, to, triggers: [] };
        edge.triggers.push(trigger);
        edges.set(key, edge);
      }
    }
  }
  return [...edges.values()];
}

/** Box positions; a state missing from the layout gets a spot on an extra row. */
export function diagramBoxes(): DiagramBox[] {
  let extra = 0;
  return INSTANCE_STATES.map((state) => {
    const [col, row] = LAYOUT[state] ?? [extra++, 3];
    return {
      state,
      x: 10 + col * (BOX.width + BOX.gapX),
      y: 10 + row * (BOX.height + BOX.gapY),
    };
  });
}
