/**
 * A small Prometheus text-format registry (counters, gauges, histograms with
 * labels): the Brain needs a handful of series, not a client library.
 */

type Labels = Readonly<Record<string, string>>;

function labelKey(labels: Labels): string {
  const entries = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return "";
  const escapeValue = (value: string) =>
    value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
  return `{${entries.map(([k, v]) => `${k}="${escapeValue(v)}"`).join(",")}}`;
}

interface Metric {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  render(): string[];
}

export class Counter implements Metric {
  readonly type = "counter";
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  render(): string[] {
    return [...this.values].map(([key, value]) => `${this.name}${key} ${value}`);
  }
}

export class Gauge implements Metric {
  readonly type = "gauge";
  private values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly collect?: () => Promise<void> | void,
  ) {}
  set(labels: Labels, value: number): void {
    this.values.set(labelKey(labels), value);
  }
  /** Replaces every series at once (for gauges computed from a query). */
  replace(series: readonly [Labels, number][]): void {
    this.values = new Map(series.map(([labels, value]) => [labelKey(labels), value]));
  }
  async refresh(): Promise<void> {
    await this.collect?.();
  }
  render(): string[] {
    return [...this.values].map(([key, value]) => `${this.name}${key} ${value}`);
  }
}

export class Histogram implements Metric {
  readonly type = "histogram";
  private readonly series = new Map<
    string,
    { counts: number[]; sum: number; count: number; labels: Labels }
  >();
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[] = [
      0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
    ],
  ) {}
  observe(labels: Labels, value: number): void {
    const key = labelKey(labels);
    let entry = this.series.get(key);
    if (!entry) {
      entry = { counts: this.buckets.map(() => 0), sum: 0, count: 0, labels };
      this.series.set(key, entry);
    }
    this.buckets.forEach((bound, index) => {
      if (value <= bound) entry.counts[index]! += 1;
    });
    entry.sum += value;
    entry.count += 1;
  }
  render(): string[] {
    const lines: string[] = [];
    for (const entry of this.series.values()) {
      this.buckets.forEach((bound, index) => {
        lines.push(
          `${this.name}_bucket${labelKey({ ...entry.labels, le: String(bound) })} ${entry.counts[index]}`,
        );
      });
      lines.push(`${this.name}_bucket${labelKey({ ...entry.labels, le: "+Inf" })} ${entry.count}`);
      lines.push(`${this.name}_sum${labelKey(entry.labels)} ${entry.sum}`);
      lines.push(`${this.name}_count${labelKey(entry.labels)} ${entry.count}`);
    }
    return lines;
  }
}

export class MetricsRegistry {
  private readonly metrics: Metric[] = [];

  register<M extends Metric>(metric: M): M {
    if (this.metrics.some((m) => m.name === metric.name))
      throw new Error(`metric ${metric.name} registered twice`);
    this.metrics.push(metric);
    return metric;
  }

  /** The Prometheus text exposition (format 0.0.4). */
  async render(): Promise<string> {
    for (const metric of this.metrics) if (metric instanceof Gauge) await metric.refresh();
    const lines: string[] = [];
    for (const metric of this.metrics) {
      lines.push(
        `# HELP ${metric.name} ${metric.help}`,
        `# TYPE ${metric.name} ${metric.type}`,
        ...metric.render(),
      );
    }
    return `${lines.join("\n")}\n`;
  }
}
