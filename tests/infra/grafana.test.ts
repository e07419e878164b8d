import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { exportedSeriesNames, inCI, locateTool, metricNamesIn, run } from "./support/prometheus.js";

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: { expr: string; refId: string }[];
}
const dashboard = JSON.parse(readFileSync(path.resolve("infra/grafana/payment-service.json"), "utf8")) as {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string }[] };
};
const queryPanels = dashboard.panels.filter((p) => p.type !== "row");
const expressions = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** The panels under each row, by row title, in order. */
function rows(): Map<string, Panel[]> {
  const byRow = new Map<string, Panel[]>();
  let current: Panel[] | undefined;
  for (const panel of dashboard.panels) {
    if (panel.type === "row") {
      current = [];
      byRow.set(panel.title, current);
    } else current?.push(panel);
  }
  return byRow;
}

describe("metricNamesIn (the check below relies on it)", () => {
  it.each([
    [
      'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job="a",route!="x"}[5m])))',
      ["http_request_duration_seconds_bucket"],
    ],
    ['sum(rate(a_total{status=~"5.."}[$__rate_interval])) / on(job) group_left max by (job) (b_bytes)', ["a_total", "b_bytes"]],
    ["up == 0 and on(instance) c offset 5m or vector(1e3)", ["up", "c"]],
    ['max without (state) (db_pool_connections{state="idle"}) > bool 0.8', ["db_pool_connections"]],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Grafana variable, not a template literal
    ["rate(process_cpu_seconds_total[${__interval}]) * 100", ["process_cpu_seconds_total"]],
  ])("%s", (expr, names) => {
    expect([...metricNamesIn(expr)].sort()).toEqual([...names].sort());
  });
});

describe("Grafana dashboard", () => {
  it("has the guide's four rows: payments, system, Fiuu, database", () => {
    expect([...rows().keys()]).toEqual(["Payments", "System", "Fiuu", "Database"]);
    for (const [title, panels] of rows()) expect(panels.length, title).toBeGreaterThanOrEqual(4);
  });

  it("shows in each row what the guide asks for", () => {
    const namesIn = (row: string) => new Set((rows().get(row) ?? []).flatMap((p) => (p.targets ?? []).flatMap((t) => [...metricNamesIn(t.expr)])));
    const expected: Record<string, string[]> = {
      // per minute, success rate by method, average amount, processing duration
      Payments: ["payments_total", "payment_amount_sum", "payment_amount_count", "payment_processing_duration_seconds_bucket"],
      // requests per second, error rate, latency percentiles, memory and CPU
      System: ["http_requests_total", "http_request_duration_seconds_bucket", "process_resident_memory_bytes", "process_cpu_seconds_total"],
      // request rate, circuit breaker, retries, errors
      Fiuu: ["fiuu_requests_total", "fiuu_circuit_breaker_state", "fiuu_retry_attempts_total"],
      // pool, query duration, size
      Database: ["db_pool_connections", "db_query_duration_seconds_bucket", "db_size_bytes"],
    };
    for (const [row, names] of Object.entries(expected)) {
      for (const name of names) expect(namesIn(row), `${row} row shows ${name}`).toContain(name);
    }
  });

  it("names only metrics the service exports (its registry, with histogram series and default process metrics)", async () => {
    const exported = await exportedSeriesNames();
    expect(exported).toContain("process_cpu_seconds_total");
    expect(exported).toContain("http_request_duration_seconds_bucket");
    expect(exported).not.toContain("http_request_duration_seconds");
    for (const { panel, expr } of expressions) {
      const names = metricNamesIn(expr);
      expect(names.size, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect(exported, `${panel} uses ${name}`).toContain(name);
    }
  });

  it("queries the payment-service job through the dashboard's Prometheus data source variable", () => {
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }));
    for (const panel of queryPanels) {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Grafana variable, not a template literal
      expect(panel.datasource, panel.title).toEqual({ type: "prometheus", uid: "${datasource}" });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
    }
    for (const { panel, expr } of expressions) {
      const selectors = expr.match(/[a-z_:]+\{[^}]*\}/g) ?? [];
      expect(selectors.length, panel).toBeGreaterThan(0);
      for (const selector of selectors) expect(selector, panel).toContain('job="payment-service"');
    }
  });

  it("lays panels out on the 24-column grid with unique ids", () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
  });

  it.skipIf(!locateTool("promtool") && !inCI)(
    "has queries that are valid PromQL (parsed by promtool; needs promtool on PATH: apt-get install prometheus; required in CI)",
    () => {
      const promtool = locateTool("promtool");
      if (!promtool) throw new Error('promtool is not on PATH: install Debian\'s "prometheus" package; .ci/run does');
      const scratch = mkdtempSync(path.join(tmpdir(), "grafana-promql-"));
      try {
        const rules = expressions.map(({ expr }, i) => ({
          record: `dashboard:query_${i}`,
          expr: expr.replace(/\$__rate_interval|\$__interval|\$\{__interval\}/g, "5m"),
        }));
        writeFileSync(path.join(scratch, "queries.yml"), stringify({ groups: [{ name: "dashboard", rules }] }));
        const result = run(promtool, ["check", "rules", path.join(scratch, "queries.yml")]);
        expect(result.status, result.output).toBe(0);
        expect(result.output).toContain(`SUCCESS: ${rules.length} rules found`);
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    },
  );
});
