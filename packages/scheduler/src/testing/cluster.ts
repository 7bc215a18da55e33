/**
 * A cluster in one line, for tests and benchmarks:
 * `cluster({ nodes: 1000, memory: 32768, labels: { region: ["eu", "us"] } })`.
 * Deterministic: the same options give the same nodes.
 */
import type { NodeStatus, PortRange, RuntimeKind } from "@orchestrator/core";
import type { NodeSnapshot } from "../node-snapshot.js";
import { seededRandom } from "../seed.js";

/** A label's values: one for every node, cycled through, or computed per node index. */
export type LabelSpec = string | readonly string[] | ((index: number) => string | undefined);

export interface ClusterOptions {
  /** How many nodes. */
  nodes: number;
  /** Memory per node in MiB (default 32768). */
  memory?: number;
  /** CPU cores per node (default 16). */
  cpu?: number;
  /** Disk per node in MiB (default 512000). */
  disk?: number;
  labels?: Readonly<Record<string, LabelSpec>>;
  /** Default process and docker. */
  runtimes?: readonly RuntimeKind[];
  /** Default 30000–30999. */
  portRange?: PortRange;
  reservedPorts?: readonly number[];
  overcommit?: number;
  /** This many nodes (spread evenly over the list) are OFFLINE. */
  offline?: number;
  /** This many nodes (spread evenly, after the offline ones) are DRAINING. */
  draining?: number;
  /**
   * Pre-allocates a random share of each node's memory, CPU and disk, uniform
   * in [0, 2·fill] of capacity (capped at full), in 256 MiB / 0.25 core steps.
   */
  fill?: number;
  /** For `fill`; default 1. */
  seed?: number;
  /** Node ids are `${idPrefix}${index}`; default "node-". */
  idPrefix?: string;
  agentVersion?: string;
}

function labelAt(spec: LabelSpec, index: number): string | undefined {
  if (typeof spec === "string") return spec;
  if (typeof spec === "function") return spec(index);
  return spec.length === 0 ? undefined : spec[index % spec.length];
}

/** Positions of `count` nodes spread evenly over `total`. */
function spreadEvenly(count: number, total: number, offset: number): Set<number> {
  const chosen = new Set<number>();
  if (count <= 0) return chosen;
  const stride = total / count;
  for (let k = 0; k < count && chosen.size < total; k += 1) {
    let index = (Math.floor(k * stride) + offset) % total;
    while (chosen.has(index)) index = (index + 1) % total;
    chosen.add(index);
  }
  return chosen;
}

/** Builds `options.nodes` node snapshots. */
export function cluster(options: ClusterOptions): NodeSnapshot[] {
  const count = options.nodes;
  if (!Number.isSafeInteger(count) || count < 0)
    throw new RangeError("cluster({ nodes }) must be an integer ≥ 0");
  const memory = options.memory ?? 32768;
  const cpu = options.cpu ?? 16;
  const disk = options.disk ?? 512_000;
  const fill = options.fill ?? 0;
  const random = seededRandom(options.seed ?? 1);
  const offline = spreadEvenly(options.offline ?? 0, count, 0);
  const draining = spreadEvenly(options.draining ?? 0, count, 1);
  for (const index of offline) draining.delete(index);
  const runtimes = options.runtimes ?? ["process", "docker"];
  const portRange = options.portRange ?? { from: 30000, to: 30999 };
  const prefix = options.idPrefix ?? "node-";
  const nodes: NodeSnapshot[] = [];
  for (let i = 0; i < count; i += 1) {
    const labels: Record<string, string> = {};
    for (const [key, spec] of Object.entries(options.labels ?? {})) {
      const value = labelAt(spec, i);
      if (value !== undefined) labels[key] = value;
    }
    const share = () => Math.min(1, random() * 2 * fill);
    const status: NodeStatus = offline.has(i) ? "OFFLINE" : draining.has(i) ? "DRAINING" : "ONLINE";
    nodes.push({
      id: `${prefix}${i}`,
      name: `${prefix}${i}`,
      status,
      labels,
      capacity: { memoryMb: memory, cpu, diskMb: disk },
      allocated: {
        memoryMb: Math.floor((share() * memory) / 256) * 256,
        cpu: Math.floor(share() * cpu * 4) / 4,
        diskMb: Math.floor((share() * disk) / 1024) * 1024,
      },
      ...(options.overcommit === undefined ? {} : { overcommit: options.overcommit }),
      portRange,
      ...(options.reservedPorts === undefined ? {} : { reservedPorts: options.reservedPorts }),
      runtimes,
      ...(options.agentVersion === undefined ? {} : { agentVersion: options.agentVersion }),
    });
  }
  return nodes;
}
