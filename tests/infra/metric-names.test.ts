import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createMetrics } from "../../lib/core/metrics.js";
import { metricNamesIn } from "./support/prometheus.js";

// Every series an alert rule or a dashboard panel reads must be one the service registers
// (lib/core/metrics.ts; checked in prometheus.test.ts and grafana.test.ts) and one its code writes: a
// rule on a metric nobody increments can never fire. That the written series carry the label
// values the alerts select is tests/infra/alerts-fire.test.ts's business.

const rules = (
  parse(readFileSync(path.resolve("infra/prometheus/alerts.yml"), "utf8")) as { groups: { rules: { alert: string; expr: string }[] }[] }
).groups.flatMap((g) => g.rules);
const panels = (
  JSON.parse(readFileSync(path.resolve("infra/grafana/payment-service.json"), "utf8")) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  }
).panels;
const reads: { where: string; name: string }[] = [
  ...rules.flatMap((r) => [...metricNamesIn(r.expr)].map((name) => ({ where: `alert ${r.alert}`, name }))),
  ...panels.flatMap((p) => (p.targets ?? []).flatMap((t) => [...metricNamesIn(t.expr)].map((name) => ({ where: `panel ${p.title}`, name })))),
].filter((r) => r.name !== "up"); // Prometheus's own

/** lib/ and handlers/ sources, lib/core/metrics.ts (the registry itself) left out. */
function sources(): string {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith(".ts") && full !== path.resolve("lib/core/metrics.ts")) files.push(full);
    }
  };
  walk(path.resolve("lib"));
  walk(path.resolve("handlers"));
  return files.map((f) => readFileSync(f, "utf8")).join("\n");
}

describe("metric names the alerts and the dashboard read", () => {
  it("are each written by the service's code, not only registered", () => {
    expect(reads.length).toBeGreaterThan(20);
    const code = sources();
    // The property of createMetrics() that registers each name (histograms by their series).
    const owners = new Map<string, string>();
    for (const [property, metric] of Object.entries(createMetrics({ defaultMetrics: false }))) {
      const name = (metric as { name?: unknown }).name;
      if (typeof name !== "string") continue;
      for (const series of [name, `${name}_bucket`, `${name}_sum`, `${name}_count`]) owners.set(series, property);
    }
    for (const { where, name } of reads) {
      const property = owners.get(name);
      if (!property) continue; // a default process_* / nodejs_* metric, collected by prom-client itself
      expect(new RegExp(`\\.${property}\\b`).test(code), `${where} reads ${name}; nothing outside lib/core/metrics.ts uses metrics.${property}`).toBe(
        true,
      );
    }
  });
});
