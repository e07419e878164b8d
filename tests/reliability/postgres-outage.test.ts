import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../lib/adapters/db/client.js";
import { jsonRequest } from "../support/app.js";
import { createTestDatabase, realPostgresUrl } from "../support/databases.js";
import { formPost, newTranId, signedReport } from "../support/fiuu.js";
import { createOutageApp, startTraffic, type OutageContext, type Sample } from "../support/outage.js";
import { bearerFor, deploymentEnv, holdOrder, killAll, lockWaiters, startReplica, type Replica } from "../support/replicas.js";
import { startTcpProxy } from "../support/tcp-proxy.js";
import { eventually, figure, percentile, sleep } from "../support/timing.js";

// PostgreSQL goes away in the middle of traffic (every connection dropped, new ones refused) and
// comes back. The service must say so quickly and truthfully — 503 with Retry-After, never a hang
// or a 500 — refuse Fiuu's reports so Fiuu sends them again, and recover without a restart.

const realServers = Boolean(realPostgresUrl && process.env.TEST_REDIS_HOST);

describe.skipIf(!realServers)(
  "PostgreSQL cut off mid-traffic (needs TEST_DATABASE_URL and TEST_REDIS_HOST: real PostgreSQL and Redis, cut off through TCP proxies; runs in CI's real-servers pass)",
  () => {
    let t: OutageContext;
    beforeAll(async () => {
      t = await createOutageApp("postgres", { HEALTH_CHECK_TIMEOUT: "5s" });
    });
    afterAll(() => t?.close());

    const body = (orderId: string) => ({
      order_id: orderId,
      amount: 1050,
      currency: "MYR",
      description: "Kopi O",
      customer: { name: "Siti", email: "siti@example.my" },
    });
    let orders = 0;
    const newOrder = () => `PG-${Date.now()}-${++orders}`;
    const createPayment = async (auth: Record<string, string>, orderId = newOrder(), key = `k-${randomBytes(6).toString("hex")}`) =>
      t.app.request("/v1/payments", jsonRequest("POST", body(orderId), { ...auth, "Idempotency-Key": key }));
    const ready = async () => {
      const started = Date.now();
      const res = await t.health.request("/ready");
      return { status: res.status, ms: Date.now() - started, body: (await res.json()) as { checks: Record<string, { status: string }> } };
    };
    const eventsOf = async (paymentId: string) =>
      (await queryRows<{ type: string }>(t.database.handle.db, sql`select type from events where payment_id = ${paymentId} order by id`)).map(
        (e) => e.type,
      );

    it("answers 503 with Retry-After within 10 s, refuses Fiuu's reports, and recovers by itself, applying the re-sent reports once", async () => {
      const auth = await t.bearer();
      // Payments Fiuu will report on while the database is away, and one to read.
      const reported: { id: string; gateway: { order_id: string } }[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await createPayment(auth);
        expect(res.status).toBe(201);
        reported.push((await res.json()) as (typeof reported)[number]);
      }
      const reports = reported.map((p) => {
        const tranID = newTranId();
        const fields = { orderid: p.gateway.order_id, status: "00" as const, amount: "10.50", tranID };
        return {
          paymentId: p.id,
          notification: signedReport(t.deps.config.fiuu, { ...fields, nbcb: "2" }),
          callback: signedReport(t.deps.config.fiuu, { ...fields, nbcb: "1" }),
        };
      });
      const readable = reported[0]!.id;
      // A pending report on a traffic payment: applied once, then a duplicate every time, always 200.
      const trafficPayment = (await (await createPayment(auth)).json()) as { gateway: { order_id: string } };
      const pendingReport = signedReport(t.deps.config.fiuu, { orderid: trafficPayment.gateway.order_id, status: "22", amount: "10.50", nbcb: "2" });
      const refusedCreates: { orderId: string; key: string; startedAt: number }[] = [];

      const traffic = startTraffic(
        {
          create: async () => {
            const startedAt = Date.now();
            const orderId = newOrder();
            const key = `k-${randomBytes(6).toString("hex")}`;
            const res = await createPayment(auth, orderId, key);
            if (res.status === 503) refusedCreates.push({ orderId, key, startedAt });
            return res;
          },
          read: () => t.app.request(`/v1/payments/${readable}`, { headers: auth }),
          list: () => t.app.request("/v1/payments?limit=5", { headers: auth }),
          report: () => t.app.request("/webhooks/fiuu/notify", formPost(pendingReport)),
        },
        { workers: 4, maxRequests: 4_000, maxMs: 45_000 },
      );

      await sleep(500);
      // Every kind of request is in flight across the cut, transactions included (see the driver
      // patch described below).
      const cutAt = Date.now();
      t.proxy.cut();
      traffic.release();

      // Fiuu's reports while the database is away: refused (not 2xx), so Fiuu sends them again.
      for (const report of reports) {
        const notify = await t.app.request("/webhooks/fiuu/notify", formPost(report.notification));
        const callback = await t.app.request("/webhooks/fiuu/callback", formPost(report.callback));
        expect([notify.status, callback.status]).toEqual([503, 503]);
        expect(await callback.text()).not.toContain("CBTOKEN:MPSTATOK");
      }
      const notReady = await ready();
      expect(notReady.status).toBe(503);
      expect(notReady.body.checks.database!.status).toBe("failing");
      expect(notReady.body.checks.redis!.status).toBe("ok");
      await sleep(2_000);

      const restoredAt = Date.now();
      t.proxy.restore();
      // Every kind of request succeeds again, without a restart.
      const recovered = await eventually(() => {
        const after = traffic.samples.filter((s) => s.startedAt >= restoredAt);
        const firstOk = (op: string) => after.find((s) => s.op === op && s.status >= 200 && s.status < 300);
        const firsts = ["create", "read", "list", "report"].map(firstOk);
        return firsts.every(Boolean) && (firsts as Sample[]);
      }, 20_000);
      const recoveredAt = Math.max(...recovered.map((s) => s.finishedAt));
      await sleep(500);
      const samples = await traffic.stop();

      // During the outage: 503 `unavailable` with Retry-After, quickly; never a 500, never a hang.
      for (const s of samples) {
        expect(s.error, JSON.stringify(s)).toBeUndefined();
        expect([200, 201, 503], JSON.stringify(s)).toContain(s.status);
        expect(s.ms, JSON.stringify(s)).toBeLessThan(10_000);
        if (s.status === 503) expect(s, JSON.stringify(s)).toMatchObject({ code: "unavailable", retryAfter: "5" });
      }
      const during = samples.filter((s) => s.startedAt > cutAt && s.finishedAt < restoredAt);
      // Enough requests fell inside the outage to judge it (4 workers, each 503 taking up to ~3 s on
      // a loaded 2-core machine; usually 25–40).
      expect(during.length).toBeGreaterThanOrEqual(8);
      expect(during.filter((s) => s.status !== 503)).toEqual([]);
      // Once recovered, it stays recovered.
      const afterRecovery = samples.filter((s) => s.startedAt > recoveredAt);
      expect(afterRecovery.length).toBeGreaterThan(10);
      expect(afterRecovery.filter((s) => s.status >= 300)).toEqual([]);
      expect((await ready()).status).toBe(200);

      // Fiuu sends its reports again: each payment moves once and emits one event.
      for (const report of reports) {
        for (const fields of [report.notification, report.callback, report.notification]) {
          const res = await t.app.request(`/webhooks/fiuu/${fields.nbcb === "1" ? "callback" : "notify"}`, formPost(fields));
          expect(res.status).toBe(200);
        }
        expect(await eventsOf(report.paymentId)).toEqual(["payment.succeeded"]);
        // The notification sent twice is one stored message, received twice.
        const applied = await queryRows<{ outcome: string; times_received: number }>(
          t.database.handle.db,
          sql`select outcome, times_received from gateway_messages where payment_id = ${report.paymentId} order by id`,
        );
        expect(applied.map((m) => [m.outcome, Number(m.times_received)])).toEqual([
          ["applied", 2],
          ["duplicate", 1],
        ]);
      }
      // Creates refused during the outage, retried with their keys: they run now (their claims were
      // released). One that was committing as the connection dropped may have committed although
      // its answer was a 503: its retry is then told the order's payment. Either way, one payment.
      expect(refusedCreates.some((c) => c.startedAt > cutAt)).toBe(true);
      for (const refused of refusedCreates.slice(0, 8)) {
        const retried = await createPayment(auth, refused.orderId, refused.key);
        const answer = (await retried.json()) as { id?: string; code?: string; payment_id?: string };
        if (refused.startedAt > cutAt || retried.status === 201) {
          expect(retried.status, JSON.stringify(answer)).toBe(201);
          expect(retried.headers.get("idempotency-replayed")).toBeNull();
        } else {
          expect(answer).toMatchObject({ code: "order_has_payment" });
        }
        const held = await queryRows<{ id: string }>(t.database.handle.db, sql`select id from payments where order_id = ${refused.orderId}`);
        expect(held.map((p) => p.id)).toEqual([answer.id ?? answer.payment_id]);
      }

      const failures = during.map((s) => s.ms);
      const firstRefusal = Math.min(...samples.filter((s) => s.status === 503).map((s) => s.finishedAt)) - cutAt;
      figure(
        `Postgres cut: first 503 ${firstRefusal} ms after the cut; 503 latency p50 ${percentile(failures, 50)} ms, p95 ${percentile(failures, 95)} ms, max ${Math.max(...failures)} ms over ${failures.length} requests; /ready 503 in ${notReady.ms} ms; all requests 2xx again ${recoveredAt - restoredAt} ms after restore`,
      );
    }, 60_000);
  },
);

// A driver bug this test caught: postgres.js 3.4.9 answers a connection that drops in the middle of
// a transaction by sending ROLLBACK on the dead connection; its deferred write then dereferences the
// null socket in a setImmediate callback (connection.js nextWrite), an uncaught TypeError that ends
// the process (upstream porsager/postgres#1154, #1208; fix proposed in #1168, not released). The
// service ships that fix as infra/patches/postgres+3.4.9.patch, applied by patch-package on install.
describe.skipIf(!realServers)(
  "PostgreSQL drops its connections in the middle of a transaction (needs TEST_DATABASE_URL and TEST_REDIS_HOST: real PostgreSQL and Redis, cut off through TCP proxies; runs in CI's real-servers pass)",
  () => {
    it("answers the request in flight 503 and keeps running", async () => {
      const database = await createTestDatabase();
      const admin = postgres(database.url!, { max: 2, onnotice: () => {} });
      const target = new URL(database.url!);
      const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
      target.host = `127.0.0.1:${proxy.port}`;
      const env = deploymentEnv({ databaseUrl: target.toString() });
      let replica: Replica | undefined;
      let releaseLock!: () => void;
      const held = new Promise<void>((resolve) => (releaseLock = resolve));
      let holder: Promise<unknown> = Promise.resolve();
      try {
        replica = await startReplica("postgres-drop", env);
        const auth = { ...(await bearerFor(env, `shop-drop-${randomBytes(4).toString("hex")}`)), "content-type": "application/json" };
        const key = `k-${randomBytes(6).toString("hex")}`;
        const orderId = `DROP-${Date.now()}`;
        const body = JSON.stringify({
          order_id: orderId,
          amount: 1050,
          currency: "MYR",
          description: "Teh O",
          customer: { name: "Lim", email: "lim@example.my" },
        });
        // The create waits in the database on the order, held here; then the database connection
        // drops under it.
        const hold = await holdOrder(admin, orderId);
        holder = held.then(() => hold.release());
        const inFlight = fetch(`${replica.url}/v1/payments`, { method: "POST", body, headers: { ...auth, "Idempotency-Key": key } }).then(
          (res) => ({ status: res.status }),
          (error: Error) => ({ error: error.message }),
        );
        await eventually(async () => (await lockWaiters(admin, new URL(database.url!).pathname.slice(1))) >= 1, 10_000);
        proxy.cut();
        expect(await inFlight).toEqual({ status: 503 });
        // The database notices the cut connection and cancels the create waiting there.
        await eventually(async () => (await lockWaiters(admin, new URL(database.url!).pathname.slice(1))) === 0, 10_000);
        await sleep(500);
        expect(replica.child.exitCode).toBeNull();
        proxy.restore();
        releaseLock();
        const retried = await eventually(
          async () => {
            const res = await fetch(`${replica!.url}/v1/payments`, { method: "POST", body, headers: { ...auth, "Idempotency-Key": key } });
            return res.status === 201 && res;
          },
          15_000,
          250,
        );
        expect(retried.status).toBe(201);
      } finally {
        releaseLock();
        await holder.catch(() => undefined);
        await killAll(replica ? [replica] : []);
        await proxy.close();
        await admin.end({ timeout: 5 });
        await database.drop();
      }
    }, 60_000);
  },
);
