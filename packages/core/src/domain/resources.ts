/** Compute resources requested by an instance or offered by a node. */
export interface Resources {
  /** Memory in MiB. */
  memoryMb: number;
  /** CPU in cores (0.25 = a quarter of one core). */
  cpu: number;
  /** Disk in MiB. */
  diskMb: number;
}

/** An inclusive range of TCP/UDP ports. */
export interface PortRange {
  from: number;
  to: number;
}

/** The kinds of runtime a node can offer; integrators may add their own names. */
export type RuntimeKind = "process" | "docker" | (string & {});
