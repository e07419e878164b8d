import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../lib/adapters/db/client.js";
import { createTestRedis, jsonRequest } from "../support/app.js";
import { realPostgresUrl } from "../support/databases.js";
import { formPost, newTranId, signedReport } from "../support/fiuu.js";
import { createOutageApp, startTraffic, type OutageContext } from "../support/outage.js";
import { eventually, figure, percentile, sleep } from "../support/timing.js";

// Redis goes away (every connection dropped, new ones refused) and comes back. Redis guards
// "once" for the shop's calls, so creating payments is refused (503) rather than run unguarded;
// everything else — reads, Fiuu's reports — goes on, and rate limiting lets requests through.

const realServers = Boolean(realPostgresUrl && process.env.TEST_REDIS_HOST);

describe.skipIf(!realServers)(
  "Redis cut off (needs TEST_DATABASE_URL and TEST_REDIS_HOST: real PostgreSQL and Redis, cut off through TCP proxies; runs in CI's real-servers pass)",
  () => {
    let t: OutageContext;
    beforeAll(async () => {
      t = await createOutageApp("redis", { HEALTH_CHECK_TIMEOUT: "5s" });
    });
    afterAll(() => t?.close());

    const body = (orderId: string) => ({
      order_id: orderId,
      amount: 1050,
      currency: "MYR",
      description: "Milo ais",
      customer: { name: "Ravi", email: "ravi@example.my" },
    });
    let orders = 0;
    const newOrder = () => `RD-${Date.now()}-${++orders}`;
    const create = (auth: Record<string, string>, key = `k-${randomBytes(6).toString("hex")}`) =>
      t.app.request("/v1/payments", jsonRequest("POST", body(newOrder()), { ...auth, "Idempotency-Key": key }));
    const timed = async (request: () => Promise<Response> | Response) => {
      const started = Date.now();
      const res = await request();
      return { res, ms: Date.now() - started };
    };

    it("refuses creates with 503 (over its limit or not), serves reads and Fiuu's reports, and recovers by itself", async () => {
      const auth = await t.bearer();
      // A second shop that has used up its budget: 429 while Redis is up.
      const limitedSub = `shop-limited-${randomBytes(4).toString("hex")}`;
      const limited = await t.bearer(limitedSub);
      const direct = await createTestRedis();
      try {
        const window = Math.floor(Date.now() / 60_000);
        for (const w of [window, window + 1])
          await direct.redis.set(`ratelimit:create_payment:${encodeURIComponent(limitedSub)}:${w}`, 10_000, { ex: 180 });
      } finally {
        await direct.close();
      }
      expect((await create(limited)).status).toBe(429);

      const payments: { id: string; gateway: { order_id: string } }[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await create(auth);
        expect(res.status).toBe(201);
        payments.push((await res.json()) as (typeof payments)[number]);
      }
      const [readable, ...reported] = payments;

      const traffic = startTraffic(
        {
          create: () => create(auth),
          read: () => t.app.request(`/v1/payments/${readable!.id}`, { headers: auth }),
          list: () => t.app.request("/v1/payments?limit=5", { headers: auth }),
        },
        { workers: 3, maxRequests: 3_000, maxMs: 45_000 },
      );
      await sleep(300);
      const cutAt = Date.now();
      t.proxy.cut();

      // Creating a payment: 503, because "once" cannot be promised without the idempotency store.
      const refused = await timed(() => create(auth));
      expect(refused.res.status).toBe(503);
      expect(refused.res.headers.get("retry-after")).toBe("5");
      expect(await refused.res.json()).toMatchObject({ code: "unavailable" });
      // The shop over its limit is told 503 too, not 429: its count and the claim share one round
      // trip, and idempotency, which fails closed, refused it.
      const overLimit = await create(limited);
      expect(overLimit.status).toBe(503);
      expect(t.logs.lines.some((l) => l.msg === "idempotency store unavailable; refusing the request")).toBe(true);

      // Fiuu's reports are processed normally: acknowledged, applied once.
      const reportMs: number[] = [];
      for (const payment of reported) {
        const fields = { orderid: payment.gateway.order_id, status: "00" as const, amount: "10.50", tranID: newTranId() };
        const notify = await timed(() =>
          t.app.request("/webhooks/fiuu/notify", formPost(signedReport(t.deps.config.fiuu, { ...fields, nbcb: "2" }))),
        );
        const callback = await timed(() =>
          t.app.request("/webhooks/fiuu/callback", formPost(signedReport(t.deps.config.fiuu, { ...fields, nbcb: "1" }))),
        );
        expect([notify.res.status, await notify.res.text()]).toEqual([200, "OK"]);
        expect([callback.res.status, await callback.res.text()]).toEqual([200, "CBTOKEN:MPSTATOK"]);
        reportMs.push(notify.ms, callback.ms);
        const events = await queryRows<{ type: string }>(t.database.handle.db, sql`select type from events where payment_id = ${payment.id}`);
        expect(events.map((e) => e.type)).toEqual(["payment.succeeded"]);
      }
      const notReady = await timed(() => t.health.request("/ready"));
      expect(notReady.res.status).toBe(503);
      expect(await notReady.res.json()).toMatchObject({ checks: { redis: { status: "failing" }, database: { status: "ok" } } });
      await sleep(1_000);

      const restoredAt = Date.now();
      t.proxy.restore();
      const recovered = await eventually(
        () => traffic.samples.find((s) => s.op === "create" && s.startedAt >= restoredAt && s.status === 201),
        20_000,
      );
      await sleep(500);
      const samples = await traffic.stop();

      for (const s of samples) {
        expect(s.error, JSON.stringify(s)).toBeUndefined();
        expect(s.ms, JSON.stringify(s)).toBeLessThan(10_000);
      }
      const during = samples.filter((s) => s.startedAt > cutAt && s.finishedAt < restoredAt);
      const createsDuring = during.filter((s) => s.op === "create");
      const readsDuring = during.filter((s) => s.op !== "create");
      expect(createsDuring.length).toBeGreaterThan(0);
      for (const s of createsDuring) expect(s, JSON.stringify(s)).toMatchObject({ status: 503, code: "unavailable", retryAfter: "5" });
      expect(readsDuring.length).toBeGreaterThan(10);
      expect(readsDuring.filter((s) => s.status !== 200)).toEqual([]);
      // Recovered: creates succeed again, rate limits hold again, and the service is ready.
      const afterRecovery = samples.filter((s) => s.startedAt > recovered.finishedAt);
      expect(afterRecovery.filter((s) => s.status >= 300)).toEqual([]);
      expect((await create(limited)).status).toBe(429);
      expect((await t.health.request("/ready")).status).toBe(200);

      const createMs = createsDuring.map((s) => s.ms).concat(refused.ms);
      const readMs = readsDuring.map((s) => s.ms);
      figure(
        `Redis cut: create 503 p50 ${percentile(createMs, 50)} ms, p95 ${percentile(createMs, 95)} ms (n=${createMs.length}); reads 200 p95 ${percentile(readMs, 95)} ms (n=${readMs.length}); Fiuu reports 200 p95 ${percentile(reportMs, 95)} ms; /ready 503 in ${notReady.ms} ms; creates 201 again ${recovered.finishedAt - restoredAt} ms after restore`,
      );
    }, 60_000);
  },
);
