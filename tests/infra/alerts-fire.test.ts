import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { signToken } from "../../lib/http/auth/tokens.js";
import { createTestDatabase, type TestDatabase } from "../support/databases.js";
import { formPost, signedReport } from "../support/fiuu.js";
import { freePort, startServiceProcess, type ServiceProcess } from "../support/process.js";
import { startTcpProxy } from "../support/tcp-proxy.js";
import {
  alertmanagerBinary,
  inCI,
  locateTool,
  parsePrometheusText,
  sampleValue,
  startAlertmanager,
  startPrometheus,
  waitFor,
  type RunningAlertmanager,
  type RunningPrometheus,
} from "./support/prometheus.js";

// The alerts a running service can be driven into, seen by the real Prometheus: the service runs
// as `npm start` runs it, in its own process, on the real Postgres (behind a proxy the test can
// cut) and Redis; Prometheus scrapes its metrics port with the shipped prometheus.yml and a copy
// of alerts.yml whose `for:` durations are cut to 1 s, and sends what fires to the real
// Alertmanager with the shipped alertmanager.yml (the Swarm stack's). The service is then given a
// conflicted payment, a Fiuu that cannot be reached (the breaker opens), a webhook receiver that
// answers 503, and a database outage that answers the API's callers with 5xx.

const missing = ["TEST_DATABASE_URL", "TEST_REDIS_HOST"].filter((name) => !process.env[name]);
const prometheus = locateTool("prometheus");
const alertmanager = alertmanagerBinary();
const skipReason =
  missing.length > 0
    ? ` (skipped: needs ${missing.join(" and ")}; the 5xx burst is a Postgres outage behind a proxy)`
    : !prometheus
      ? " (skipped: no prometheus on PATH)"
      : "";

/** The shipped rules with every `for:` cut to 1 s, in a scratch file. */
function rulesWithShortFor(dir: string): string {
  const rules = parse(readFileSync(path.resolve("infra/prometheus/alerts.yml"), "utf8")) as { groups: { rules: { for?: string }[] }[] };
  for (const rule of rules.groups.flatMap((g) => g.rules)) if (rule.for) rule.for = "1s";
  const file = path.join(dir, "alerts.yml");
  writeFileSync(file, stringify(rules));
  return file;
}

/** A shop's webhook receiver that is down: every delivery gets 503. */
async function startFailingReceiver() {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    req.resume();
    res.writeHead(503, { "content-type": "text/plain" }).end("down for maintenance");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/payments`,
    hits: () => hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.skipIf(missing.length > 0 || (!prometheus && !inCI))(`alerts the running service can be driven into${skipReason}`, () => {
  const fiuu = { merchantId: `SB_alerts${randomBytes(4).toString("hex")}`, secretKey: randomBytes(16).toString("hex") };
  const jwtSecret = randomBytes(32).toString("hex");
  let database: TestDatabase;
  let databaseProxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let receiver: Awaited<ReturnType<typeof startFailingReceiver>>;
  let service: ServiceProcess;
  let running: RunningPrometheus;
  let manager: RunningAlertmanager | undefined;
  let scratch: string;
  let api: string;
  let metricsUrl: string;

  beforeAll(async () => {
    if (!prometheus) throw new Error('prometheus is not on PATH: install Debian\'s "prometheus" package; .ci/run does');
    scratch = mkdtempSync(path.join(tmpdir(), "alerts-fire-"));
    database = await createTestDatabase();
    const target = new URL(database.url!);
    databaseProxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const viaProxy = new URL(database.url!);
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(databaseProxy.port);
    receiver = await startFailingReceiver();
    // Nothing listens here: Fiuu cannot be reached.
    const unreachableFiuu = `http://127.0.0.1:${await freePort()}`;
    service = await startServiceProcess({
      ENVIRONMENT: "test",
      LOG_LEVEL: "info",
      PORT: "0",
      HEALTH_CHECK_PORT: "0",
      METRICS_PORT: "0",
      DATABASE_URL: viaProxy.toString(),
      DB_SSL_MODE: "disable",
      REDIS_HOST: process.env.TEST_REDIS_HOST!,
      REDIS_PORT: process.env.TEST_REDIS_PORT ?? "6379",
      JWT_SECRET: jwtSecret,
      ENCRYPTION_KEY: randomBytes(32).toString("hex"),
      WEBHOOK_SECRET: `whsec_${randomBytes(32).toString("base64")}`,
      WEBHOOK_URLS: receiver.url,
      WEBHOOK_RETRY_ATTEMPTS: "0",
      WEBHOOK_TIMEOUT: "2s",
      FIUU_MERCHANT_ID: fiuu.merchantId,
      FIUU_VERIFY_KEY: randomBytes(16).toString("hex"),
      FIUU_SECRET_KEY: fiuu.secretKey,
      FIUU_SANDBOX: "true",
      FIUU_LOCAL_SANDBOX: "false",
      FIUU_PAYMENT_URL: unreachableFiuu,
      FIUU_API_URL: unreachableFiuu,
      FIUU_TIMEOUT: "2s",
      FIUU_RETRY_ATTEMPTS: "0",
      // One failed call opens the breaker, and it stays open for the test.
      FIUU_BREAKER_THRESHOLD: "1",
      FIUU_BREAKER_RESET: "10m",
    });
    api = `http://127.0.0.1:${service.ports.main}`;
    metricsUrl = `http://127.0.0.1:${service.ports.metrics}/metrics`;
    // Alertmanager is required in CI (.ci/run installs it); elsewhere the alerts are checked in Prometheus only.
    if (alertmanager || inCI) manager = await startAlertmanager(path.resolve("infra/prometheus/alertmanager.yml"));
    running = await startPrometheus({
      target: `127.0.0.1:${service.ports.metrics}`,
      ruleFiles: [rulesWithShortFor(scratch)],
      alertmanager: manager?.address,
    });
  }, 90_000);

  afterAll(async () => {
    databaseProxy?.restore();
    await running?.stop();
    await manager?.stop();
    if (service) expect(await service.stop()).toBe(0);
    await receiver?.close();
    await databaseProxy?.close();
    await database?.drop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }, 60_000);

  const scrapeService = async () => parsePrometheusText(await (await fetch(metricsUrl)).text());
  const activeAlerts = async () => {
    const states = new Map<string, string>();
    for (const alert of await running.alerts()) {
      // firing wins over pending when an alert has several series
      if (states.get(alert.labels.alertname!) !== "firing") states.set(alert.labels.alertname!, alert.state);
    }
    return states;
  };

  it("sees PaymentConflicted, FiuuCircuitBreakerOpen, WebhookDeliveriesFailing and HighErrorRate pending or firing, and Alertmanager receives them", async () => {
    // No alert of these is active while the service is healthy.
    await waitFor("a first scrape", 15_000, async () => ((await running.query('up{job="payment-service"} == 1')).length === 1 ? true : undefined));
    const watched = ["PaymentConflicted", "FiuuCircuitBreakerOpen", "WebhookDeliveriesFailing", "HighErrorRate"];
    expect([...(await activeAlerts()).keys()].filter((name) => watched.includes(name))).toEqual([]);

    // A shop creates a payment of RM 25.90; Fiuu's signed notification says RM 1.00.
    const token = await signToken(jwtSecret, { sub: "shop-alerts", role: "service", ttlSeconds: 600 });
    const created = await fetch(`${api}/v1/payments`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "idempotency-key": `alerts-${Date.now()}` },
      body: JSON.stringify({
        order_id: `ALERT-${Date.now()}`,
        amount: 2590,
        currency: "MYR",
        description: "Kopi set",
        customer: { name: "Mei Ling", email: "mei@example.my", mobile: "+60174823915" },
      }),
    });
    expect(created.status).toBe(201);
    const payment = (await created.json()) as { id: string; gateway: { order_id: string } };
    const report = signedReport({ merchantId: fiuu.merchantId, secretKey: fiuu.secretKey } as Parameters<typeof signedReport>[0], {
      orderid: payment.gateway.order_id,
      status: "00",
      amount: "1.00",
      nbcb: "2",
    });
    const notified = await fetch(`${api}/webhooks/fiuu/notify`, formPost(report));
    expect(notified.status).toBe(200);
    const paymentState = await (await fetch(`${api}/v1/payments/${payment.id}`, { headers: { authorization: `Bearer ${token}` } })).json();
    expect(paymentState).toMatchObject({ status: "conflicted" });

    // The service's own loops take it from there: payment.conflicted goes to the receiver (503, no
    // retries left: failed), and the IPN echo to the unreachable Fiuu (the breaker opens).
    await waitFor("the service to count the failed delivery and open the breaker", 20_000, async () => {
      const samples = await scrapeService();
      const failed = sampleValue(samples, "webhook_deliveries_total", { outcome: "failed" }) ?? 0;
      const breaker = sampleValue(samples, "fiuu_circuit_breaker_state", { merchant_id: fiuu.merchantId });
      return failed >= 1 && breaker === 1 ? true : undefined;
    });
    expect(receiver.hits()).toBeGreaterThanOrEqual(1);

    // Then the database goes away: every API call that needs it answers 5xx, for as long as it
    // takes Prometheus to see the rate (two scrapes at least).
    databaseProxy.cut();
    const statuses: number[] = [];
    let burst = true;
    const bursting = (async () => {
      while (burst) {
        const res = await fetch(`${api}/v1/payments?order_id=ALERT-none`, { headers: { authorization: `Bearer ${token}` } });
        statuses.push(res.status);
        await res.arrayBuffer();
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    let states = new Map<string, string>();
    try {
      states = await waitFor("all four alerts pending or firing", 40_000, async () => {
        states = await activeAlerts();
        return watched.every((name) => states.has(name)) ? states : undefined;
      }).catch((error: Error) => {
        throw new Error(
          `${error.message}; active: ${JSON.stringify(Object.fromEntries(states))}, missing: ${watched.filter((n) => !states.has(n)).join(", ")}`,
        );
      });
    } finally {
      burst = false;
      await bursting;
      databaseProxy.restore();
    }
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.every((status) => status >= 500)).toBe(true);
    for (const name of watched) expect(["pending", "firing"], name).toContain(states.get(name));

    // The alerts carry the labels their annotations and routing use.
    const alerts = await running.alerts();
    expect(alerts.find((a) => a.labels.alertname === "FiuuCircuitBreakerOpen")?.labels).toMatchObject({
      merchant_id: fiuu.merchantId,
      severity: "critical",
    });
    expect(alerts.find((a) => a.labels.alertname === "PaymentConflicted")?.labels).toMatchObject({ job: "payment-service", severity: "critical" });
    expect(running.log()).not.toMatch(/level=error/);

    // Prometheus hands what fires to Alertmanager, as prometheus.yml sends the Swarm stack's.
    if (manager) {
      const received = await waitFor("the four alerts at Alertmanager", 20_000, async () => {
        const names = new Set((await manager!.alerts()).map((a) => a.labels.alertname));
        return watched.every((name) => names.has(name)) ? names : undefined;
      });
      expect(watched.every((name) => received.has(name))).toBe(true);
    }
  }, 120_000);
});
