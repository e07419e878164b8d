import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import { createMetricsApp } from "../../handlers/metrics.js";
import { createTestApp, type TestContext } from "../support/app.js";
import {
  exportedSeriesNames,
  inCI,
  locateTool,
  metricNamesIn,
  run,
  startPrometheus,
  waitFor,
  type PrometheusRule,
  type RunningPrometheus,
} from "./support/prometheus.js";

const dir = path.resolve("infra/prometheus");
const file = (name: string) => path.join(dir, name);
const promtool = locateTool("promtool");
const prometheus = locateTool("prometheus");
const missing = (tool: string) =>
  `${tool} is not on PATH: install Debian's "prometheus" package (apt-get install --no-install-recommends prometheus); .ci/run does`;

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const alertRules = (): AlertRule[] =>
  (parse(readFileSync(file("alerts.yml"), "utf8")) as { groups: { rules: AlertRule[] }[] }).groups.flatMap((g) => g.rules);

interface ScrapeConfig {
  job_name: string;
  relabel_configs?: { target_label?: string; replacement?: string; source_labels?: string[]; action?: string; regex?: string }[];
  static_configs?: { targets: string[]; labels?: Record<string, string> }[];
  dns_sd_configs?: { names: string[]; type?: string; port?: number }[];
  kubernetes_sd_configs?: { role: string; namespaces?: { names: string[] } }[];
  [key: string]: unknown;
}
interface PrometheusConfig {
  global?: Record<string, unknown>;
  rule_files?: string[];
  alerting?: unknown;
  scrape_configs: ScrapeConfig[];
}
const prometheusConfig = (name: string) => parse(readFileSync(file(name), "utf8")) as PrometheusConfig;

describe("alert rules and scrape configs (static checks)", () => {
  it("has the guide's three alerts and the ones this service adds", () => {
    const names = alertRules().map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const name of [
      "PaymentServiceDown",
      "HighErrorRate",
      "FiuuCircuitBreakerOpen",
      "PaymentServiceNotReady",
      "WebhookDeliveriesFailing",
      "WebhookDeliveriesBackingUp",
      "PaymentConflicted",
      "PaymentLateSuccess",
      "PaymentDuplicateCharge",
      "RequeryBacklog",
      "FiuuMisconfigured",
      "DatabasePoolSaturated",
    ]) {
      expect(names).toContain(name);
    }
  });

  it("gives every alert a severity, a summary and a description, and selects only the payment-service job", () => {
    for (const rule of alertRules()) {
      expect(["critical", "warning"], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
      // Every selector in the expression is scoped to the job (absent() included).
      const selectors = rule.expr.match(/[a-z_:]+\{[^}]*\}/g) ?? [];
      expect(selectors.length, rule.alert).toBeGreaterThan(0);
      for (const selector of selectors) expect(selector, rule.alert).toContain('job="payment-service"');
    }
  });

  it("names only metrics the service exports (or Prometheus's own up)", async () => {
    const exported = await exportedSeriesNames();
    for (const rule of alertRules()) {
      for (const name of metricNamesIn(rule.expr)) {
        if (name === "up") continue;
        expect(exported, `${rule.alert} uses ${name}`).toContain(name);
      }
    }
  });

  it("has a promtool unit test where each alert fires and one where it stays silent", () => {
    const tests = parse(readFileSync(file("alerts.test.yml"), "utf8")) as {
      rule_files: string[];
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    };
    expect(tests.rule_files).toEqual(["alerts.yml"]);
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const { alert } of alertRules()) {
      const own = cases.filter((c) => c.alertname === alert);
      expect(
        own.some((c) => (c.exp_alerts ?? []).length > 0),
        `${alert} fires in some test`,
      ).toBe(true);
      expect(
        own.some((c) => (c.exp_alerts ?? []).length === 0),
        `${alert} stays silent in some test`,
      ).toBe(true);
    }
  });

  it("labels every scrape job's targets job=payment-service, as the alerts and dashboard expect", () => {
    for (const name of ["prometheus.yml", "prometheus.kubernetes.yml"]) {
      const config = prometheusConfig(name);
      expect(config.rule_files, name).toEqual(["alerts.yml"]);
      for (const job of config.scrape_configs) {
        const last = job.relabel_configs?.at(-1);
        expect(last, `${name} ${job.job_name}`).toMatchObject({ target_label: "job", replacement: "payment-service" });
      }
    }
  });

  it("discovers Kubernetes pods the way infra/k8s/deployment.yaml annotates and names them", () => {
    const [job] = prometheusConfig("prometheus.kubernetes.yml").scrape_configs;
    const deployment = parseAllDocuments(readFileSync(path.resolve("infra/k8s/deployment.yaml"), "utf8"))
      .map(
        (d) =>
          d.toJSON() as {
            kind: string;
            spec: {
              template: {
                metadata: { labels: Record<string, string>; annotations: Record<string, string> };
                spec: { containers: { ports: { name: string; containerPort: number }[] }[] };
              };
            };
          },
      )
      .find((d) => d.kind === "Deployment")!;
    const pod = deployment.spec.template;
    const namespace = (parse(readFileSync(path.resolve("infra/k8s/kustomization.yaml"), "utf8")) as { namespace: string }).namespace;
    expect(job!.kubernetes_sd_configs).toEqual([{ role: "pod", namespaces: { names: [namespace] } }]);
    const keep = (label: string) => job!.relabel_configs!.find((r) => r.action === "keep" && r.source_labels?.[0] === label)?.regex;
    expect(keep("__meta_kubernetes_pod_label_app_kubernetes_io_name")).toBe(pod.metadata.labels["app.kubernetes.io/name"]);
    expect(keep("__meta_kubernetes_pod_annotation_prometheus_io_scrape")).toBe(pod.metadata.annotations["prometheus.io/scrape"]);
    const metricsPort = pod.spec.containers[0]!.ports.find((p) => p.name === keep("__meta_kubernetes_pod_container_port_name"));
    expect(metricsPort?.containerPort).toBe(9090);
    expect(pod.metadata.annotations["prometheus.io/port"]).toBe("9090");
    expect(pod.metadata.annotations["prometheus.io/path"]).toBe("/metrics");
  });
});

describe.skipIf(!promtool && !inCI)("promtool (needs promtool on PATH: apt-get install prometheus; required in CI)", () => {
  beforeAll(() => {
    if (!promtool) throw new Error(missing("promtool"));
  });

  it("accepts prometheus.yml (check config, which also checks alerts.yml)", () => {
    const result = run(promtool!, ["check", "config", file("prometheus.yml")]);
    expect(result.output).toContain("SUCCESS");
    expect(result.status, result.output).toBe(0);
  });

  it("accepts prometheus.kubernetes.yml (with static discovery if this promtool has no Kubernetes discovery)", () => {
    let result = run(promtool!, ["check", "config", file("prometheus.kubernetes.yml")]);
    if (result.status !== 0 && /field kubernetes_sd_configs not found/.test(result.output)) {
      // Debian builds Prometheus without Kubernetes discovery: check everything else (relabelling,
      // rule files, alerting) with the discovery block swapped for an empty static one.
      const scratch = mkdtempSync(path.join(tmpdir(), "promtool-k8s-"));
      try {
        const config = prometheusConfig("prometheus.kubernetes.yml");
        for (const job of config.scrape_configs) {
          delete job.kubernetes_sd_configs;
          job.static_configs = [{ targets: [] }];
        }
        writeFileSync(path.join(scratch, "prometheus.yml"), stringify(config));
        copyFileSync(file("alerts.yml"), path.join(scratch, "alerts.yml"));
        result = run(promtool!, ["check", "config", path.join(scratch, "prometheus.yml")]);
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    }
    expect(result.status, result.output).toBe(0);
  });

  it("accepts alerts.yml (check rules)", () => {
    const result = run(promtool!, ["check", "rules", file("alerts.yml")]);
    expect(result.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(result.status, result.output).toBe(0);
  });

  it("passes the alert unit tests (test rules)", () => {
    const result = run(promtool!, ["test", "rules", file("alerts.test.yml")]);
    expect(result.status, result.output).toBe(0);
    expect(result.output).toContain("SUCCESS");
  });

  it("fails a unit test whose expectation is wrong (the tests can fail)", () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "promtool-neg-"));
    try {
      copyFileSync(file("alerts.yml"), path.join(scratch, "alerts.yml"));
      // The first test expects PaymentServiceDown at 4m; claim silence instead.
      const text = readFileSync(file("alerts.test.yml"), "utf8").replace(
        /(eval_time: 4m\n\s+alertname: PaymentServiceDown\n\s+exp_alerts:)\n[\s\S]*?(?=\n\s+- eval_time: 5m)/,
        "$1 []",
      );
      expect(text).not.toBe(readFileSync(file("alerts.test.yml"), "utf8"));
      writeFileSync(path.join(scratch, "alerts.test.yml"), text);
      const result = run(promtool!, ["test", "rules", path.join(scratch, "alerts.test.yml")]);
      expect(result.status).not.toBe(0);
      expect(result.output).toContain("PaymentServiceDown");
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!prometheus && !inCI)(
  "a real Prometheus scraping the service (needs prometheus on PATH: apt-get install prometheus; required in CI)",
  () => {
    let t: TestContext;
    let metricsServer: ServerType;
    let running: RunningPrometheus | undefined;
    const query = (promql: string) => running!.query(promql);

    beforeAll(async () => {
      if (!prometheus) throw new Error(missing("prometheus"));
      t = await createTestApp();
      expect((await t.app.request("/v1/payment-methods")).status).toBe(200);
      const metricsApp = createMetricsApp(t.deps);
      metricsServer = await new Promise<ServerType>((resolve) => {
        const server = serve({ fetch: metricsApp.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(server));
      });
      // The shipped config with its static job pointed at this service, and the shipped rules as they are.
      running = await startPrometheus({ target: `127.0.0.1:${(metricsServer.address() as AddressInfo).port}`, ruleFiles: [file("alerts.yml")] });
    }, 30_000);

    afterAll(async () => {
      await running?.stop();
      if (metricsServer) await new Promise((resolve) => metricsServer.close(resolve));
      await t?.close();
    });

    it("scrapes the metrics port: up is 1 for job payment-service", async () => {
      const up = await waitFor("a successful scrape", 10_000, async () => {
        const result = await query('up{job="payment-service"}');
        return result[0]?.value[1] === "1" ? result : undefined;
      });
      expect(up).toHaveLength(1);
    }, 15_000);

    it("stores the service's own metrics: requests by route template, process and database metrics", async () => {
      const requests = await query('http_requests_total{job="payment-service",route="/v1/payment-methods",status_code="200"}');
      expect(Number(requests[0]?.value[1])).toBeGreaterThanOrEqual(1);
      expect((await query('process_cpu_seconds_total{job="payment-service"}')).length).toBe(1);
      expect(Number((await query('db_size_bytes{job="payment-service"}'))[0]?.value[1])).toBeGreaterThan(0);
      expect((await query('readiness_check_up{job="payment-service"} == 1')).map((r) => r.metric.check).sort()).toEqual(["database", "redis"]);
    });

    it("loads and evaluates every alert rule without errors, and none fires for a healthy service", async () => {
      const names = alertRules()
        .map((r) => r.alert)
        .sort();
      type Rule = PrometheusRule;
      const readRules = () => running!.rules();
      // Rules evaluated before the first scrape may be pending (PaymentServiceAbsent); give them a
      // few evaluations with data, then judge the last reading.
      let rules: Rule[] = [];
      const deadline = Date.now() + 10_000;
      do {
        rules = await readRules();
        if (rules.length === names.length && rules.every((r) => r.health === "ok" && r.state === "inactive")) break;
        await new Promise((r) => setTimeout(r, 250));
      } while (Date.now() < deadline);
      expect(rules.map((r) => r.name).sort()).toEqual(names);
      for (const rule of rules) {
        expect(rule.health, `${rule.name}: ${rule.lastError ?? ""}`).toBe("ok");
        expect(rule.state, rule.name).toBe("inactive");
      }
      expect(running!.log()).not.toMatch(/level=error/);
    }, 15_000);
  },
);
