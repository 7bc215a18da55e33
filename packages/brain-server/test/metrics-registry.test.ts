import { describe, expect, it } from "vitest";
import { Counter, Gauge, Histogram, MetricsRegistry } from "../src/metrics/metrics-registry.js";

describe("MetricsRegistry", () => {
  it("renders the Prometheus text format", async () => {
    const registry = new MetricsRegistry();
    const requests = registry.register(new Counter("orch_api_requests_total", "API requests"));
    const instances = registry.register(
      new Gauge("orch_instances", "Instances by state", () => {
        instances.replace([
          [{ state: "RUNNING" }, 3],
          [{ state: "FAILED" }, 1],
        ]);
      }),
    );
    const latency = registry.register(
      new Histogram("orch_api_seconds", "API latency", [0.01, 0.1]),
    );
    requests.inc({ route: "/a", status: "200" });
    requests.inc({ route: "/a", status: "200" });
    latency.observe({ route: "/a" }, 0.05);
    const text = await registry.render();
    expect(text).toContain("# TYPE orch_api_requests_total counter");
    expect(text).toContain('orch_api_requests_total{route="/a",status="200"} 2');
    expect(text).toContain('orch_instances{state="RUNNING"} 3');
    expect(text).toContain('orch_api_seconds_bucket{le="0.01",route="/a"} 0');
    expect(text).toContain('orch_api_seconds_bucket{le="0.1",route="/a"} 1');
    expect(text).toContain('orch_api_seconds_bucket{le="+Inf",route="/a"} 1');
    expect(text).toContain('orch_api_seconds_count{route="/a"} 1');
  });

  it("escapes label values and refuses duplicates", () => {
    const registry = new MetricsRegistry();
    const gauge = registry.register(new Gauge("g", "g"));
    gauge.set({ name: 'a "quoted"\nvalue' }, 1);
    expect(() => registry.register(new Gauge("g", "again"))).toThrow(/twice/);
    return registry
      .render()
      .then((text) => expect(text).toContain('g{name="a \\"quoted\\"\\nvalue"} 1'));
  });
});
