import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMetricsApp } from "../../handlers/metrics.js";
import { openPostgres } from "../../lib/adapters/db/client.js";
import { recordEvent } from "../../lib/domain/webhooks/events.js";
import { openRedis } from "../../lib/adapters/redis/index.js";
import { bearer, createTestApp, type TestContext } from "../support/app.js";
import { formPost, signedReport } from "../support/fiuu.js";
import { createPayment } from "../support/flow.js";
import { realPostgresUrl } from "../support/databases.js";
import { parsePrometheusText, sampleValue } from "./support/prometheus.js";

async function scrape(app: ReturnType<typeof createMetricsApp>) {
  const res = await app.request("/metrics");
  expect(res.status).toBe(200);
  return parsePrometheusText(await res.text());
}

describe("scrape-time database metrics", () => {
  let t: TestContext;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it("reports the database size, this replica's pool size and its connections", async () => {
    const samples = await scrape(createMetricsApp(t.deps));
    expect(sampleValue(samples, "db_size_bytes")).toBeGreaterThan(1_000_000);
    // The tests' Postgres handle is a postgres.js pool of 10; PGlite is one in-process connection.
    expect(sampleValue(samples, "db_pool_max_connections")).toBe(realPostgresUrl ? 10 : 1);
    // At least the connection that read pg_stat_activity is open, and it counts as idle.
    expect(sampleValue(samples, "db_pool_connections", { state: "idle" })).toBeGreaterThanOrEqual(1);
    for (const state of ["active", "idle_in_transaction", "other"]) {
      expect(sampleValue(samples, "db_pool_connections", { state })).toBeGreaterThanOrEqual(0);
    }
    expect(sampleValue(samples, "readiness_check_up", { check: "database" })).toBe(1);
    expect(sampleValue(samples, "readiness_check_up", { check: "redis" })).toBe(1);
  });

  it("times the queries it runs under fixed operation names", async () => {
    const samples = await scrape(createMetricsApp(t.deps));
    const operations = samples
      .filter((s) => s.name === "db_query_duration_seconds_count")
      .map((s) => s.labels.operation)
      .sort();
    expect(operations).toEqual(
      realPostgresUrl
        ? ["connection_stats", "database_size", "readiness", "retention_overdue", "table_sizes", "webhook_backlog"]
        : ["database_size", "readiness", "retention_overdue", "table_sizes", "webhook_backlog"],
    );
  });

  it("reports each table's bytes and rows, and the rows overdue for retention by kind", async () => {
    const samples = await scrape(createMetricsApp(t.deps));
    const bytes = samples.filter((s) => s.name === "db_table_bytes");
    for (const table of ["payments", "refunds", "gateway_messages", "events", "event_deliveries", "jobs", "audit_log"]) {
      expect(bytes.find((s) => s.labels.table === table)?.value).toBeGreaterThan(0);
      expect(samples.some((s) => s.name === "db_table_rows" && s.labels.table === table)).toBe(true);
    }
    const overdue = samples
      .filter((s) => s.name === "retention_overdue_rows")
      .map((s) => s.labels.kind)
      .sort();
    expect(overdue).toEqual(["gateway_messages", "personal_data", "webhook_bodies"]);
  });

  it("on Postgres, counts a connection busy in a transaction as idle_in_transaction", async () => {
    if (!realPostgresUrl) return; // PGlite has no concurrent connections to watch
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const inTransaction = new Promise<void>((resolve) => (started = resolve));
    const transaction = t.deps.database.db.transaction(async (tx) => {
      await tx.execute(sql`select 1`);
      started();
      await held;
    });
    await inTransaction;
    try {
      const samples = await scrape(createMetricsApp(t.deps));
      expect(sampleValue(samples, "db_pool_connections", { state: "idle_in_transaction" })).toBeGreaterThanOrEqual(1);
    } finally {
      release();
      await transaction;
    }
  });

  it("reads at most once per max age however many scrapes arrive, and again after it", async () => {
    let now = 0;
    const app = createMetricsApp(t.deps, { maxAgeMs: 15_000, clock: () => now });
    const readsOfSize = (samples: ReturnType<typeof parsePrometheusText>) =>
      sampleValue(samples, "db_query_duration_seconds_count", { operation: "database_size" });
    const before = readsOfSize(await scrape(createMetricsApp(t.deps, { maxAgeMs: 0 }))) ?? 0;
    const storm = await Promise.all(Array.from({ length: 25 }, () => scrape(app)));
    // One read for the storm (the reference scrape above read once more before it).
    expect(readsOfSize(storm.at(-1)!)).toBe(before + 1);
    now += 14_000;
    expect(readsOfSize(await scrape(app))).toBe(before + 1);
    now += 2_000;
    expect(readsOfSize(await scrape(app))).toBe(before + 2);
  });

  it("counts pending webhook deliveries and how long the oldest due one has waited", async () => {
    const minuteAgo = new Date(t.deps.now().getTime() - 60_000);
    await recordEvent(t.deps.database.db, ["https://shop.example/hooks/a", "https://shop.example/hooks/b"], {
      type: "payment.succeeded",
      data: { test: true },
      now: minuteAgo,
    });
    const samples = await scrape(createMetricsApp(t.deps));
    expect(sampleValue(samples, "webhook_deliveries_pending")).toBe(2);
    const oldest = sampleValue(samples, "webhook_deliveries_oldest_due_seconds")!;
    expect(oldest).toBeGreaterThanOrEqual(59);
    expect(oldest).toBeLessThan(120);
  });

  it("labels HTTP metrics with the route template, never the raw path or id", async () => {
    await t.app.request("/v1/payments/pay_01JRAWIDNEVERINMETRICS", { headers: await bearer(t) });
    const text = await (await createMetricsApp(t.deps).request("/metrics")).text();
    expect(text).toMatch(/http_requests_total\{method="GET",route="\/v1\/payments\/:id",status_code="404"\} \d+/);
    expect(text).not.toContain("pay_01JRAWIDNEVERINMETRICS");
  });
});

describe("scrape-time metrics when a dependency is down", () => {
  let t: TestContext;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());
  const withTimeout = (deps: TestContext["deps"], timeoutMs: number) => ({
    ...deps,
    config: { ...deps.config, health: { ...deps.config.health, timeoutMs } },
  });

  it("reports the database check failing and the database gauges as unknown, not stale", async () => {
    const unreachable = await openPostgres("postgres://nobody@127.0.0.1:1/none", { ssl: "disable" });
    try {
      expect(sampleValue(await scrape(createMetricsApp(t.deps)), "db_size_bytes")).toBeGreaterThan(0);
      // Same registry, database gone: the earlier readings must not be served as current.
      const samples = await scrape(createMetricsApp(withTimeout({ ...t.deps, database: unreachable }, 3_000)));
      expect(sampleValue(samples, "readiness_check_up", { check: "database" })).toBe(0);
      expect(sampleValue(samples, "readiness_check_up", { check: "redis" })).toBe(1);
      expect(sampleValue(samples, "db_size_bytes")).toBeNaN();
      expect(sampleValue(samples, "webhook_deliveries_pending")).toBeNaN();
      expect(samples.filter((s) => s.name === "db_pool_connections")).toEqual([]);
      // The pool's capacity is configuration, known without the database (openPostgres's default 10).
      expect(sampleValue(samples, "db_pool_max_connections")).toBe(10);
    } finally {
      await unreachable.close();
    }
  });

  it("reports the Redis check failing", async () => {
    const deadRedis = await openRedis({ kind: "tcp", host: "127.0.0.1", port: 1, db: 0, maxConnections: 1 });
    try {
      const samples = await scrape(createMetricsApp(withTimeout({ ...t.deps, redis: deadRedis.redis }, 2_000)));
      expect(sampleValue(samples, "readiness_check_up", { check: "redis" })).toBe(0);
      expect(sampleValue(samples, "readiness_check_up", { check: "database" })).toBe(1);
      expect(sampleValue(samples, "db_size_bytes")).toBeGreaterThan(0);
    } finally {
      await deadRedis.close();
    }
  });
});

describe("payments_total as the alerts and the dashboard read it", () => {
  let t: TestContext;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  const count = async (name: string, labels: Record<string, string>) => sampleValue(await scrape(createMetricsApp(t.deps)), name, labels) ?? 0;
  const notify = async (
    payment: { gateway: { order_id: string } },
    report: { status: "00" | "11" | "22"; amount: string; channel: string; tranID?: string },
  ) => {
    // nbcb=2: Fiuu's server-to-server notification, whose channel the service believes.
    const fields = signedReport(t.deps.config.fiuu, {
      orderid: payment.gateway.order_id,
      status: report.status,
      amount: report.amount,
      tranID: report.tranID,
      nbcb: "2",
    });
    const res = await t.app.request("/webhooks/fiuu/notify", formPost({ ...fields, channel: report.channel }));
    expect(res.status).toBe(200);
    return fields.tranID!;
  };

  it("counts a conflicted payment (PaymentConflicted's series) once, under the channel Fiuu reported", async () => {
    const payment = await createPayment(t);
    await notify(payment, { status: "00", amount: "1.00", channel: "cimb" });
    expect(await count("payments_total", { status: "conflicted", channel: "cimb" })).toBe(1);
    // A second report that disagrees changes nothing, and counts nothing.
    await notify(payment, { status: "00", amount: "2.00", channel: "cimb" });
    expect(await count("payments_total", { status: "conflicted", channel: "cimb" })).toBe(1);
  });

  it("counts a failed payment under its channel, as a success of the same channel is counted", async () => {
    const failed = await createPayment(t);
    await notify(failed, { status: "11", amount: "25.90", channel: "hlb" });
    const paid = await createPayment(t);
    await notify(paid, { status: "00", amount: "25.90", channel: "hlb" });
    expect(await count("payments_total", { status: "failed", channel: "hlb" })).toBe(1);
    expect(await count("payments_total", { status: "succeeded", channel: "hlb" })).toBe(1);
    // The success-rate-by-channel panel's ratio for hlb is then 1 of 2.
    expect(await count("payments_total", { status: "failed", channel: "any" })).toBe(0);
  });

  it("counts a payment once when it succeeds, not again for a second charge or a repeated report", async () => {
    const payment = await createPayment(t);
    const amountsBefore = await count("payment_amount_count", { currency: "MYR" });
    const tranID = await notify(payment, { status: "00", amount: "25.90", channel: "rhb" });
    await notify(payment, { status: "00", amount: "25.90", channel: "rhb", tranID });
    await notify(payment, { status: "00", amount: "25.90", channel: "rhb" }); // another tranID: a duplicate charge
    expect(await count("payments_total", { status: "succeeded", channel: "rhb" })).toBe(1);
    expect(await count("payment_amount_count", { currency: "MYR" })).toBe(amountsBefore + 1);
    expect(await count("payment_events_total", { type: "payment.duplicate_charge" })).toBe(1);
  });
});
