import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { createSecureContext } from "node:tls";
import { tmpdir } from "node:os";
import path from "node:path";
import { asc, eq, sql } from "drizzle-orm";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { eventDeliveries } from "../../drizzle/schema.js";
import { localFiuuSandbox } from "../../lib/adapters/fiuu/sandbox/mount.js";
import { createApp } from "../../lib/app/app.js";
import type { Config } from "../../lib/core/config.js";
import { queryRows } from "../../lib/adapters/db/client.js";
import { recordEvent } from "../../lib/domain/webhooks/events.js";
import { nextDeliveryStep, runDeliveryBatch, webhookRetryDelay } from "../../lib/domain/webhooks/deliver.js";
import { startBackgroundWork } from "../../lib/ops/jobs/table.js";
import { claimDueDeliveries, recordDelivery } from "../../lib/domain/webhooks/queue.js";
import { checkReceiver, isNonPublicAddress, type AddressLookup } from "../../lib/domain/webhooks/receivers.js";
import { parseRetryAfter, sendWebhook, type WebhookAttempt } from "../../lib/domain/webhooks/send.js";
import { signWebhook, webhookBody, webhookSigningKey } from "../../lib/domain/webhooks/sign.js";
import { bearer, createTestApp, newKey, type TestContext } from "../support/app.js";
import { formPost, signedReport } from "../support/fiuu.js";
import { createPayment } from "../support/flow.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

// The shop's side is played by a real HTTP receiver on 127.0.0.1 that checks every request with
// the standardwebhooks package, as a shop would. Time is a frozen clock set to the real time at
// the start of each test and moved on by hand, never by more than a few minutes (the package
// refuses timestamps more than 5 minutes from its own clock).

function frozenClock() {
  let current = new Date();
  return {
    now: () => new Date(current),
    reset: () => {
      current = new Date();
    },
    advance: (ms: number) => {
      current = new Date(current.getTime() + ms);
    },
  };
}

const deliveriesOf = (t: TestContext, eventId: string) =>
  t.database.handle.db.select().from(eventDeliveries).where(eq(eventDeliveries.eventId, eventId)).orderBy(asc(eventDeliveries.id));

async function deliveryOf(t: TestContext, eventId: string) {
  const rows = await deliveriesOf(t, eventId);
  expect(rows).toHaveLength(1);
  return rows[0]!;
}

/** A payment created and cancelled through the API: its payment.cancelled event. */
async function cancelledPaymentEvent(t: TestContext) {
  const payment = await createPayment(t);
  const res = await t.app.request(`/v1/payments/${payment.id}/cancel`, {
    method: "POST",
    headers: { ...(await bearer(t)), "Idempotency-Key": newKey() },
  });
  expect(res.status).toBe(200);
  const [event] = await queryRows<{ id: string }>(
    t.database.handle.db,
    sql`select id from events where payment_id = ${payment.id} and type = 'payment.cancelled'`,
  );
  return { paymentId: payment.id, eventId: event!.id };
}

/** POST /jobs/deliver as a scheduler would. */
async function deliverBatch(t: TestContext) {
  const res = await t.app.request("/jobs/deliver", { method: "POST", headers: await bearer(t, "system") });
  expect(res.status).toBe(200);
  return (await res.json()) as { job: string; claimed: number; done: number; retried: number; failed: number };
}

async function deliveryCount(t: TestContext, outcome: string) {
  const metric = await t.deps.metrics.webhookDeliveries.get();
  return metric.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

/** Leaves no delivery pending from an earlier test, so each batch sees only this test's. */
async function settleEarlierDeliveries(t: TestContext) {
  await t.database.handle.db.execute(sql`update event_deliveries set status = 'failed', locked_until = null where status = 'pending'`);
}

// One app (one database: PGlite's start-up is the slow part) for the whole file; the raw-secret and
// staging deployments below are the same dependencies with another configuration.
const secret = `whsec_${randomBytes(32).toString("base64")}`;
const clock = frozenClock();
let receiver: WebhookReceiver;
let t: TestContext;

beforeAll(async () => {
  receiver = await startWebhookReceiver(secret);
  t = await createTestApp({
    now: clock.now,
    env: {
      WEBHOOK_SECRET: secret,
      WEBHOOK_URLS: receiver.url("/hooks"),
      WEBHOOK_RETRY_ATTEMPTS: "3",
      WEBHOOK_RETRY_DELAY: "10ms",
      WEBHOOK_TIMEOUT: "500ms",
    },
  });
});
afterAll(async () => {
  await t?.close();
  await receiver?.stop();
});
beforeEach(async () => {
  clock.reset();
  receiver.respond = () => ({ status: 204 });
  await settleEarlierDeliveries(t);
});

/** The same dependencies (database, Redis, clock, metrics) under another configuration. */
function withConfig(change: (config: Config) => Config): TestContext {
  const deps = { ...t.deps, config: change(t.deps.config) };
  return { ...t, deps, app: createApp(deps, { fiuuSandbox: localFiuuSandbox(deps.config) }) };
}

describe("webhook delivery to a shop", () => {
  it("delivers a signed payment.succeeded that standardwebhooks verifies, and only with the right secret", async () => {
    const payment = await createPayment(t);
    const fields = signedReport(t.deps.config.fiuu, { orderid: payment.gateway.order_id, status: "00", amount: "25.90" });
    expect((await t.app.request("/webhooks/fiuu/notify", formPost({ ...fields, nbcb: "2" }))).status).toBe(200);
    const [event] = await queryRows<{ id: string; created_at: string }>(
      t.database.handle.db,
      sql`select id, created_at from events where payment_id = ${payment.id}`,
    );
    const before = await deliveryCount(t, "delivered");

    expect(await deliverBatch(t)).toEqual({ job: "deliver", claimed: 1, done: 1, retried: 0, failed: 0 });

    const [hit] = receiver.hitsOf(event!.id);
    expect(receiver.hitsOf(event!.id)).toHaveLength(1);
    expect(hit!.verifyError).toBeUndefined();
    expect(hit!.path).toBe("/hooks");
    expect(hit!.headers["content-type"]).toBe("application/json");
    expect(hit!.timestamp).toBe(String(Math.floor(clock.now().getTime() / 1000)));
    expect(hit!.signature).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(hit!.payload).toEqual({
      type: "payment.succeeded",
      timestamp: new Date(event!.created_at).toISOString(),
      data: expect.objectContaining({ id: payment.id, status: "succeeded", amount: 2590 }),
    });
    expect(Object.keys(JSON.parse(hit!.body) as object)).toEqual(["type", "timestamp", "data"]);
    const headers = { "webhook-id": hit!.id, "webhook-timestamp": hit!.timestamp, "webhook-signature": hit!.signature };
    expect(() => new Webhook(`whsec_${randomBytes(32).toString("base64")}`).verify(hit!.body, headers)).toThrow(/signature/i);
    expect(() => new Webhook(secret).verify(hit!.body.replace("2590", "2591"), headers)).toThrow(/signature/i);

    expect(await deliveryOf(t, event!.id)).toMatchObject({
      status: "delivered",
      attempts: 1,
      lastStatusCode: 204,
      lastError: null,
      lockedUntil: null,
      deliveredAt: clock.now(),
    });
    expect(await deliveryCount(t, "delivered")).toBe(before + 1);

    const list = await t.app.request(`/v1/events?payment_id=${payment.id}`, { headers: await bearer(t, "admin") });
    expect(list.status).toBe(200);
    const body = (await list.json()) as { data: Array<{ id: string; deliveries: unknown[] }> };
    expect(body.data.map((e) => e.id)).toEqual([event!.id]);
    expect(body.data[0]!.deliveries).toEqual([
      {
        receiver: receiver.url("/hooks"),
        status: "delivered",
        attempts: 1,
        next_attempt_at: null,
        last_status_code: 204,
        last_error: null,
        delivered_at: clock.now().toISOString(),
      },
    ]);
  });

  it("retries a receiver that fails and then is down, with growing delays, then delivers the same webhook-id and body", async () => {
    const { eventId } = await cancelledPaymentEvent(t);
    const delays: number[] = [];
    const attemptAndMeasure = async (expected: { retried?: number; done?: number }) => {
      const sentAt = clock.now().getTime();
      expect(await deliverBatch(t)).toMatchObject({ claimed: 1, ...expected });
      const row = await deliveryOf(t, eventId);
      if (row.status === "pending") delays.push(row.nextAttemptAt.getTime() - sentAt);
      return row;
    };

    receiver.respond = () => ({ status: 500, body: "database on fire" });
    expect(await attemptAndMeasure({ retried: 1 })).toMatchObject({
      status: "pending",
      attempts: 1,
      lastStatusCode: 500,
      lastError: "HTTP 500: database on fire",
    });
    expect((await deliverBatch(t)).claimed).toBe(0); // not due yet

    clock.advance(1_000);
    await receiver.stop();
    const down = await attemptAndMeasure({ retried: 1 });
    expect(down).toMatchObject({ status: "pending", attempts: 2, lastStatusCode: null });
    // Refused, or (rarely) a kept-alive socket of the old listener found closed.
    expect(down.lastError).toMatch(/^connection failed \((ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET)\)$/);

    clock.advance(1_000);
    await receiver.start();
    receiver.respond = () => ({ status: 500 });
    await attemptAndMeasure({ retried: 1 });

    clock.advance(1_000);
    receiver.respond = () => ({ status: 200, body: "thanks" });
    expect(await attemptAndMeasure({ done: 1 })).toMatchObject({ status: "delivered", attempts: 4, lastStatusCode: 200, lastError: null });

    // WEBHOOK_RETRY_DELAY 10 ms, doubling, up to 25 % jitter on top.
    expect(delays).toHaveLength(3);
    expect(delays[0]).toBeGreaterThanOrEqual(10);
    expect(delays[0]).toBeLessThanOrEqual(13);
    expect(delays[1]).toBeGreaterThanOrEqual(20);
    expect(delays[2]).toBeGreaterThanOrEqual(40);
    expect(delays[1]!).toBeGreaterThan(delays[0]!);
    expect(delays[2]!).toBeGreaterThan(delays[1]!);

    const hits = receiver.hitsOf(eventId);
    expect(hits).toHaveLength(3); // none while the port was closed
    for (const hit of hits) {
      expect(hit.verifyError).toBeUndefined();
      expect(hit.body).toBe(hits[0]!.body);
    }
    expect(new Set(hits.map((h) => h.timestamp)).size).toBe(3);
    expect(new Set(hits.map((h) => h.signature)).size).toBe(3);
  });

  it("stops at once on 410 Gone, and logs the failure with ids, host and status only", async () => {
    const { eventId } = await cancelledPaymentEvent(t);
    const before = await deliveryCount(t, "failed");
    receiver.respond = () => ({ status: 410, body: "unsubscribed" });
    expect(await deliverBatch(t)).toMatchObject({ claimed: 1, failed: 1 });
    expect(await deliveryOf(t, eventId)).toMatchObject({ status: "failed", attempts: 1, lastStatusCode: 410 });
    clock.advance(60_000);
    expect((await deliverBatch(t)).claimed).toBe(0);
    expect(receiver.hitsOf(eventId)).toHaveLength(1);
    expect(await deliveryCount(t, "failed")).toBe(before + 1);

    const line = t.logs.lines.find((l) => l.event_id === eventId && l.msg === "webhook delivery failed for good");
    expect(line).toMatchObject({ receiver_host: `127.0.0.1:${receiver.port}`, status: 410, reason: "gone", outcome: "failed" });
    const logged = t.logs.raw.filter((l) => l.includes(eventId)).join("\n");
    expect(logged).not.toContain("unsubscribed");
    expect(logged).not.toContain(secret.slice(6));
    expect(logged).not.toContain("/hooks");
  });

  it("waits at least as long as the receiver's Retry-After", async () => {
    const { eventId } = await cancelledPaymentEvent(t);
    receiver.respond = () => ({ status: 503, headers: { "retry-after": "120" } });
    await deliverBatch(t);
    const row = await deliveryOf(t, eventId);
    expect(row).toMatchObject({ status: "pending", lastStatusCode: 503 });
    expect(row.nextAttemptAt.getTime() - clock.now().getTime()).toBe(120_000);

    clock.advance(119_000);
    expect((await deliverBatch(t)).claimed).toBe(0);
    clock.advance(1_000);
    receiver.respond = () => ({ status: 202 });
    expect(await deliverBatch(t)).toMatchObject({ claimed: 1, done: 1 });
    expect(receiver.hitsOf(eventId).every((h) => h.verifyError === undefined)).toBe(true);
  });

  it("marks a delivery failed after 1 + WEBHOOK_RETRY_ATTEMPTS attempts and keeps it; an admin's redeliver sends it again with the same webhook-id", async () => {
    const { eventId, paymentId } = await cancelledPaymentEvent(t);
    receiver.respond = () => ({ status: 500 });
    for (let attempt = 1; attempt <= 4; attempt++) {
      expect((await deliverBatch(t)).claimed).toBe(1);
      clock.advance(1_000);
    }
    const failed = await deliveryOf(t, eventId);
    expect(failed).toMatchObject({ status: "failed", attempts: 4, lastStatusCode: 500, lastError: "HTTP 500 (gave up after 4 attempts)" });
    expect((await deliverBatch(t)).claimed).toBe(0);

    const admin = await bearer(t, "admin", "ops-1");
    const listed = (await (await t.app.request(`/v1/events?payment_id=${paymentId}`, { headers: admin })).json()) as {
      data: Array<{ deliveries: Array<{ status: string }> }>;
    };
    expect(listed.data[0]!.deliveries).toMatchObject([{ status: "failed", attempts: 4, last_status_code: 500 }]);

    const res = await t.app.request(`/v1/events/${eventId}/redeliver`, { method: "POST", headers: admin });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({
      id: eventId,
      type: "payment.cancelled",
      deliveries: [
        { receiver: receiver.url("/hooks"), status: "pending", attempts: 0, next_attempt_at: clock.now().toISOString(), last_status_code: 500 },
      ],
    });
    const [audit] = await queryRows<{ actor: string; action: string }>(
      t.database.handle.db,
      sql`select actor, action from audit_log where entity_id = ${eventId}`,
    );
    expect(audit).toEqual({ actor: "admin:ops-1", action: "event.redelivered" });

    receiver.respond = () => ({ status: 204 });
    expect(await deliverBatch(t)).toMatchObject({ claimed: 1, done: 1 });
    expect(await deliveryOf(t, eventId)).toMatchObject({ status: "delivered", attempts: 1, lastStatusCode: 204 });
    const hits = receiver.hitsOf(eventId);
    expect(hits).toHaveLength(5);
    expect(new Set(hits.map((h) => h.body)).size).toBe(1);
    expect(hits.every((h) => h.verifyError === undefined)).toBe(true);

    // Redelivering a delivered event sends it once more, too.
    expect((await t.app.request(`/v1/events/${eventId}/redeliver`, { method: "POST", headers: admin })).status).toBe(202);
    expect(await deliverBatch(t)).toMatchObject({ claimed: 1, done: 1 });
    expect(receiver.hitsOf(eventId)).toHaveLength(6);
  });

  it("lets only admins redeliver, and answers 404 for an unknown event", async () => {
    const { eventId } = await cancelledPaymentEvent(t);
    for (const role of ["service", "system"] as const) {
      const res = await t.app.request(`/v1/events/${eventId}/redeliver`, { method: "POST", headers: await bearer(t, role) });
      expect(res.status).toBe(403);
    }
    expect((await t.app.request(`/v1/events/${eventId}/redeliver`, { method: "POST" })).status).toBe(401);
    const missing = await t.app.request("/v1/events/evt_nope/redeliver", { method: "POST", headers: await bearer(t, "admin") });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "not_found" });
    expect(await deliveryOf(t, eventId)).toMatchObject({ status: "pending", attempts: 0 });
  });

  it("does not follow a redirect: it is a failed attempt", async () => {
    const { eventId } = await cancelledPaymentEvent(t);
    receiver.respond = (hit) => (hit.path === "/hooks" ? { status: 302, headers: { location: receiver.url("/elsewhere") } } : { status: 204 });
    expect(await deliverBatch(t)).toMatchObject({ claimed: 1, retried: 1 });
    expect(await deliveryOf(t, eventId)).toMatchObject({ status: "pending", lastStatusCode: 302, lastError: "HTTP 302: redirect not followed" });
    expect(receiver.hits.filter((h) => h.path === "/elsewhere")).toHaveLength(0);
  });

  it("counts an answer slower than WEBHOOK_TIMEOUT as a failed attempt", async () => {
    const { eventId } = await cancelledPaymentEvent(t);
    receiver.respond = () => ({ status: 204, delayMs: 1_500 });
    expect(await deliverBatch(t)).toMatchObject({ claimed: 1, retried: 1 });
    expect(await deliveryOf(t, eventId)).toMatchObject({ status: "pending", lastStatusCode: null, lastError: "no answer within 500 ms" });
  });

  it("reads a huge error answer only up to the cap and keeps a short excerpt", async () => {
    const { eventId } = await cancelledPaymentEvent(t);
    receiver.respond = () => ({ status: 500, body: "x".repeat(4 * 1024 * 1024) });
    expect(await deliverBatch(t)).toMatchObject({ claimed: 1, retried: 1 });
    const row = await deliveryOf(t, eventId);
    expect(row.lastError).toMatch(/^HTTP 500: x+…$/);
    expect(row.lastError!.length).toBeLessThanOrEqual(220);
  });

  it("never sends the same attempt twice from batches running at once", async () => {
    const db = t.database.handle.db;
    const eventIds: string[] = [];
    for (let i = 0; i < 12; i++) {
      eventIds.push(await recordEvent(db, t.deps.config.webhooks.urls, { type: "payment.pending", data: { n: i }, now: clock.now() }));
    }
    const countsById = () => new Map(eventIds.map((id) => [id, receiver.hitsOf(id).length]));
    const drain = async (batch: () => Promise<{ claimed: number }>) => {
      let claimed = 0;
      for (;;) {
        const results = await Promise.all([batch(), batch(), batch()]);
        const round = results.reduce((sum, r) => sum + r.claimed, 0);
        claimed += round;
        if (round === 0) return claimed;
      }
    };

    // First attempts fail slowly, so the batches overlap while sending.
    receiver.respond = () => ({ status: 500, delayMs: 20 });
    expect(await drain(() => runDeliveryBatch(t.deps, { limit: 4, concurrency: 2 }))).toBe(12);
    expect([...countsById().values()]).toEqual(Array(12).fill(1));

    // Second attempts through the HTTP route, three schedulers at once.
    clock.advance(1_000);
    receiver.respond = () => ({ status: 204, delayMs: 10 });
    expect(await drain(() => deliverBatch(t))).toBe(12);
    expect([...countsById().values()]).toEqual(Array(12).fill(2));
    for (const id of eventIds) expect(await deliveryOf(t, id)).toMatchObject({ status: "delivered", attempts: 2 });
  });

  it("hands each due delivery to exactly one of many claims made at once", async () => {
    const db = t.database.handle.db;
    for (let i = 0; i < 12; i++) await recordEvent(db, t.deps.config.webhooks.urls, { type: "payment.pending", data: { n: i }, now: clock.now() });
    const claims = await Promise.all(Array.from({ length: 6 }, () => claimDueDeliveries(db, { limit: 3, lockMs: 60_000, now: clock.now() })));
    const ids = claims.flat().map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(12);
    expect(claims.flat().every((c) => c.attempts === 1)).toBe(true);
  });

  it("records nothing for a worker whose claim ran out and was taken by another", async () => {
    const db = t.database.handle.db;
    const eventId = await recordEvent(db, t.deps.config.webhooks.urls, { type: "payment.pending", data: {}, now: clock.now() });
    const [slow] = await claimDueDeliveries(db, { limit: 1, lockMs: 1_000, now: clock.now() });
    expect(await claimDueDeliveries(db, { limit: 1, lockMs: 1_000, now: clock.now() })).toEqual([]);
    clock.advance(1_001);
    const [fresh] = await claimDueDeliveries(db, { limit: 1, lockMs: 60_000, now: clock.now() });
    expect(fresh).toMatchObject({ id: slow!.id, attempts: 2 });
    expect(await recordDelivery(db, slow!, { status: "delivered", statusCode: 200 }, clock.now())).toBe(false);
    expect(await recordDelivery(db, fresh!, { status: "pending", statusCode: 500, error: "HTTP 500", nextAttemptAt: clock.now() }, clock.now())).toBe(
      true,
    );
    expect(await deliveryOf(t, eventId)).toMatchObject({ status: "pending", attempts: 2, lastStatusCode: 500, lockedUntil: null });
  });

  it("is sent by the Node server's delivery loop, which stops cleanly", async () => {
    const { eventId } = await cancelledPaymentEvent(t);
    const loop = startBackgroundWork(t.deps, { only: ["webhook batch"], intervalMs: 20 });
    try {
      const deadline = Date.now() + 5_000;
      while ((await deliveryOf(t, eventId)).status !== "delivered") {
        if (Date.now() > deadline) throw new Error("not delivered in time");
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await loop.stop();
    }
    expect(receiver.hitsOf(eventId)).toHaveLength(1);
  });
});

describe("a raw (non-whsec) secret and several receivers", () => {
  // Used as its UTF-8 bytes; a shop passes those bytes to standardwebhooks with format "raw".
  const rawSecret = `shop-secret-${randomBytes(8).toString("hex")}-ünïcode`;
  let rawReceiver: WebhookReceiver;
  let shop: TestContext;

  beforeAll(async () => {
    rawReceiver = await startWebhookReceiver(new TextEncoder().encode(rawSecret), { format: "raw" });
    shop = withConfig((c) => ({ ...c, webhooks: { ...c.webhooks, secret: rawSecret, urls: [rawReceiver.url("/a"), rawReceiver.url("/b")] } }));
  });
  afterAll(() => rawReceiver?.stop());

  it("signs with the secret's raw bytes and delivers once to each receiver", async () => {
    const { eventId } = await cancelledPaymentEvent(shop);
    expect(await deliverBatch(shop)).toMatchObject({ claimed: 2, done: 2 });
    const hits = rawReceiver.hitsOf(eventId);
    expect(hits.map((h) => h.path).sort()).toEqual(["/a", "/b"]);
    for (const hit of hits) expect(hit.verifyError).toBeUndefined();
    expect(hits[0]!.body).toBe(hits[1]!.body);
    expect((await deliveriesOf(shop, eventId)).map((d) => d.status)).toEqual(["delivered", "delivered"]);
  });
});

describe("the receiver address guard", () => {
  const publicLookup: AddressLookup = async () => [{ address: "93.184.216.34", family: 4 }];

  it.each([
    "http://127.0.0.1:8080/hooks",
    "http://127.1.2.3/",
    "http://10.0.0.5/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.10/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fd12:3456::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:7f00:1]/",
  ])("refuses %s outside development and test", async (url) => {
    const check = await checkReceiver(url, { environment: "staging", lookup: publicLookup });
    expect(check).toMatchObject({ allowed: false, reason: expect.stringMatching(/not public; refused outside development and test/) });
  });

  it("resolves host names and refuses one with any non-public address", async () => {
    const mixed: AddressLookup = async () => [
      { address: "93.184.216.34", family: 4 },
      { address: "192.168.0.7", family: 4 },
    ];
    expect(await checkReceiver("https://shop.example/hooks", { environment: "production", lookup: mixed })).toMatchObject({ allowed: false });
    expect(await checkReceiver("https://localhost/hooks", { environment: "staging" })).toMatchObject({ allowed: false });
    expect(await checkReceiver("https://shop.example/hooks", { environment: "production", lookup: publicLookup })).toEqual({ allowed: true });
    expect(await checkReceiver("https://[2606:4700::1111]/", { environment: "production" })).toEqual({ allowed: true });
    await expect(
      checkReceiver("https://shop.example/", { environment: "production", lookup: async () => Promise.reject(new Error("ENOTFOUND")) }),
    ).rejects.toThrow();
  });

  it("allows loopback in development and test, and refuses non-HTTP schemes everywhere", async () => {
    expect(await checkReceiver("http://127.0.0.1:9/hooks", { environment: "test" })).toEqual({ allowed: true });
    expect(await checkReceiver("http://localhost/hooks", { environment: "development" })).toEqual({ allowed: true });
    expect(await checkReceiver("file:///etc/passwd", { environment: "test" })).toMatchObject({ allowed: false });
    expect(await checkReceiver("not a url", { environment: "test" })).toMatchObject({ allowed: false });
  });

  it("classifies addresses", () => {
    for (const a of [
      "127.0.0.1",
      "10.1.1.1",
      "172.20.0.1",
      "192.168.0.1",
      "169.254.1.1",
      "100.127.255.255",
      "::1",
      "fc00::1",
      "fe80::abcd",
      "224.0.0.1",
      "255.255.255.255",
    ]) {
      expect(isNonPublicAddress(a), a).toBe(true);
    }
    for (const a of ["8.8.8.8", "172.32.0.1", "100.128.0.1", "1.1.1.1", "2a00:1450:4001::1"]) expect(isNonPublicAddress(a), a).toBe(false);
  });

  it("in a staging deployment, refuses a loopback receiver without sending: failed at once, counted as refused", async () => {
    const staging = withConfig((c) => ({ ...c, environment: "staging" }));
    const { eventId } = await cancelledPaymentEvent(staging);
    const before = await deliveryCount(staging, "refused");
    expect(await deliverBatch(staging)).toMatchObject({ claimed: 1, failed: 1 });
    const row = await deliveryOf(staging, eventId);
    expect(row).toMatchObject({ status: "failed", attempts: 1, lastStatusCode: null });
    expect(row.lastError).toMatch(/127\.0\.0\.1 is loopback, private or otherwise not public/);
    expect(receiver.hitsOf(eventId)).toHaveLength(0);
    expect(await deliveryCount(staging, "refused")).toBe(before + 1);
  });
});

describe("connecting to the address that was checked (DNS rebinding)", () => {
  /**
   * A resolver whose answer changes between two questions, as a rebinding attacker's DNS does: a
   * public address first (192.0.2.10, a documentation address nothing answers on), 127.0.0.1 after.
   */
  function rebindingLookup() {
    const asked: string[] = [];
    const lookup: AddressLookup = async (hostname) => {
      asked.push(hostname);
      return [{ address: asked.length === 1 ? "192.0.2.10" : "127.0.0.1", family: 4 }];
    };
    return { lookup, asked };
  }

  const attemptTo = (receiverUrl: string, options: Partial<WebhookAttempt> = {}): WebhookAttempt => ({
    receiver: receiverUrl,
    id: `evt_rebind_${randomBytes(6).toString("hex")}`,
    body: '{"type":"payment.succeeded","timestamp":"2026-01-01T00:00:00.000Z","data":{}}',
    key: webhookSigningKey(secret),
    timestampSeconds: Math.floor(Date.now() / 1000),
    timeoutMs: 400,
    environment: "staging",
    now: new Date(),
    ...options,
  });

  it("outside development and test, a host answering a public address and then 127.0.0.1 never reaches the receiver on 127.0.0.1", async () => {
    // The check alone is fooled: it sees the first answer, a public address.
    const check = rebindingLookup();
    expect(await checkReceiver(`http://localhost:${receiver.port}/hooks`, { environment: "staging", lookup: check.lookup })).toEqual({
      allowed: true,
    });

    for (const environment of ["staging", "production"] as const) {
      const { lookup, asked } = rebindingLookup();
      const attempt = attemptTo(`http://localhost:${receiver.port}/hooks`, { environment, lookup });
      const result = await sendWebhook(attempt);
      // The connection went to the address the lookup answered and the guard passed (nothing listens
      // there), never to the second answer: there is no second question.
      expect(result, environment).toMatchObject({ outcome: "error", reason: expect.stringMatching(/^(timeout|connection)$/) });
      expect(asked, environment).toEqual(["localhost"]);
      expect(receiver.hitsOf(attempt.id), environment).toHaveLength(0);
    }
  });

  it("refuses, in the connection's own lookup, a host that resolves to a loopback or private address: nothing is sent, and it is one question", async () => {
    for (const address of ["127.0.0.1", "10.0.0.8", "::1", "169.254.169.254"]) {
      const asked: string[] = [];
      const lookup: AddressLookup = async (hostname) => (asked.push(hostname), [{ address, family: address.includes(":") ? 6 : 4 }]);
      const attempt = attemptTo(`http://shop.example:${receiver.port}/hooks`, { lookup });
      expect(await sendWebhook(attempt), address).toEqual({
        outcome: "refused",
        error: `receiver address ${address} is loopback, private or otherwise not public; refused outside development and test`,
      });
      expect(asked, address).toEqual(["shop.example"]);
      expect(receiver.hitsOf(attempt.id), address).toHaveLength(0);
    }
  });

  it("in a staging deployment, a rebinding receiver host gets nothing through the delivery batch; the attempt is retried, never sent to 127.0.0.1", async () => {
    const staging = withConfig((c) => ({
      ...c,
      environment: "staging",
      webhooks: { ...c.webhooks, urls: [`http://localhost:${receiver.port}/hooks`] },
    }));
    const { eventId } = await cancelledPaymentEvent(staging);
    const { lookup, asked } = rebindingLookup();
    expect(await runDeliveryBatch(staging.deps, { lookup })).toMatchObject({ claimed: 1, retried: 1 });
    expect(asked).toEqual(["localhost"]);
    expect(await deliveryOf(staging, eventId)).toMatchObject({ status: "pending", attempts: 1, lastStatusCode: null });
    expect(receiver.hitsOf(eventId)).toHaveLength(0);
  });

  it("in development and test, connects where the same lookup answers (no second resolution there either)", async () => {
    const asked: string[] = [];
    const lookup: AddressLookup = async (hostname) => (asked.push(hostname), [{ address: "127.0.0.1", family: 4 }]);
    const attempt = attemptTo(`http://shop.example:${receiver.port}/hooks`, { environment: "test", lookup, timeoutMs: 2_000 });
    expect(await sendWebhook(attempt)).toEqual({ outcome: "delivered", statusCode: 204 });
    expect(asked).toEqual(["shop.example"]);
    expect(receiver.hitsOf(attempt.id)).toHaveLength(1);
    expect(receiver.hitsOf(attempt.id)[0]!.headers.host).toBe(`shop.example:${receiver.port}`);
  });

  it("over TLS, sends the host name as SNI and still verifies the certificate (an untrusted one is refused)", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "webhook-tls-"));
    try {
      const [keyFile, certFile] = [path.join(dir, "key.pem"), path.join(dir, "cert.pem")];
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-keyout",
          keyFile,
          "-out",
          certFile,
          "-subj",
          "/CN=shop.example",
          "-addext",
          "subjectAltName=DNS:shop.example",
          "-days",
          "1",
        ],
        { stdio: "ignore" },
      );
      const credentials = { key: readFileSync(keyFile), cert: readFileSync(certFile) };
      const context = createSecureContext(credentials);
      const servernames: string[] = [];
      let requests = 0;
      const server = createHttpsServer(
        { ...credentials, SNICallback: (servername, done) => (servernames.push(servername), done(null, context)) },
        (_req, res) => void (requests++, res.writeHead(204).end()),
      );
      server.on("tlsClientError", () => {});
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      try {
        const lookup: AddressLookup = async () => [{ address: "127.0.0.1", family: 4 }];
        const attempt = attemptTo(`https://shop.example:${(server.address() as AddressInfo).port}/hooks`, {
          environment: "test",
          lookup,
          timeoutMs: 2_000,
        });
        expect(await sendWebhook(attempt)).toMatchObject({
          outcome: "error",
          reason: "connection",
          error: "connection failed (DEPTH_ZERO_SELF_SIGNED_CERT)",
        });
        expect(servernames).toEqual(["shop.example"]);
        expect(requests).toBe(0);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("signing, schedule and Retry-After", () => {
  it("signs exactly as the standardwebhooks package does, for whsec and raw secrets", () => {
    const whsec = `whsec_${randomBytes(24).toString("base64")}`;
    const body = webhookBody({ type: "refund.succeeded", createdAt: new Date("2026-01-02T03:04:05.678Z"), data: { id: "re_1", amount: 500 } });
    expect(body).toBe('{"type":"refund.succeeded","timestamp":"2026-01-02T03:04:05.678Z","data":{"id":"re_1","amount":500}}');
    const at = new Date("2026-01-02T03:04:05Z");
    expect(signWebhook(webhookSigningKey(whsec), "evt_1", at.getTime() / 1000, body)).toBe(new Webhook(whsec).sign("evt_1", at, body));
    expect(signWebhook(webhookSigningKey("plain-secret"), "evt_1", at.getTime() / 1000, body)).toBe(
      new Webhook("plain-secret", { format: "raw" }).sign("evt_1", at, body),
    );
    expect(webhookSigningKey("whsec_AAEC")).toEqual(Buffer.from([0, 1, 2]));
    expect(() => webhookSigningKey("whsec_not base64!")).toThrow(/base64/);
    expect(() => webhookSigningKey("whsec_")).toThrow();
  });

  it("grows the delay from WEBHOOK_RETRY_DELAY with jitter that only adds", () => {
    expect([1, 2, 3, 4].map((n) => webhookRetryDelay(n, 30_000, () => 0))).toEqual([30_000, 60_000, 120_000, 240_000]);
    expect(webhookRetryDelay(1, 30_000, () => 1)).toBe(37_500);
    expect(webhookRetryDelay(40, 30_000, () => 0)).toBe(12 * 3_600_000);
  });

  it("gives up after 1 + WEBHOOK_RETRY_ATTEMPTS attempts and lets Retry-After lengthen a wait", () => {
    const webhooks = { retryAttempts: 2, retryDelayMs: 1_000 };
    const now = new Date("2026-01-01T00:00:00Z");
    const error = { outcome: "error", reason: "http_status", statusCode: 503, error: "HTTP 503" } as const;
    expect(nextDeliveryStep(error, 2, webhooks, now, () => 0)).toMatchObject({
      outcome: "retry",
      update: { status: "pending", nextAttemptAt: new Date(now.getTime() + 2_000) },
    });
    expect(nextDeliveryStep(error, 3, webhooks, now, () => 0)).toMatchObject({ outcome: "failed", update: { status: "failed" } });
    expect(nextDeliveryStep({ ...error, retryAfterMs: 60_000 }, 1, webhooks, now, () => 0).update).toMatchObject({
      nextAttemptAt: new Date(now.getTime() + 60_000),
    });
    expect(nextDeliveryStep({ ...error, retryAfterMs: 10 }, 1, webhooks, now, () => 0).update).toMatchObject({
      nextAttemptAt: new Date(now.getTime() + 1_000),
    });
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    const now = new Date("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:05:00 GMT", now)).toBe(300_000);
    expect(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});
