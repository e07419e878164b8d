import { randomBytes } from "node:crypto";
import { eq, inArray, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog, events, gatewayMessages, payments, refunds } from "../../drizzle/schema.js";
import { sealAuditLog } from "../../lib/domain/audit.js";
import { verifyAuditChain } from "../../lib/domain/audit-verify.js";
import type { AppDeps } from "../../lib/domain/deps.js";
import { openPostgres, queryRows, type DatabaseHandle } from "../../lib/adapters/db/client.js";
import { readDatabaseStats } from "../../lib/adapters/db/metrics.js";
import { createEmailHasher, normaliseEmail } from "../../lib/domain/retention/email-hash.js";
import { runRetentionBatch } from "../../lib/domain/retention/job.js";
import { createApp } from "../../lib/app/app.js";
import { assembleDeps } from "../../lib/app/deps.js";
import { nodeOpeners } from "../../lib/app/node-openers.js";
import { bearer, createTestApp, createTestRedis, jsonRequest, newKey, type TestContext } from "../support/app.js";
import { realPostgresUrl } from "../support/databases.js";
import { payThroughSandbox } from "../support/flow.js";
import { applyRoles, asRole, rolePasswords } from "../support/roles.js";

let t: TestContext;
let db: TestContext["database"]["handle"]["db"];
beforeAll(async () => {
  t = await createTestApp();
  db = t.database.handle.db;
});
afterAll(() => t.close());

let orders = 0;
const personal = () => {
  const tag = randomBytes(4).toString("hex");
  return { name: `Siti Aminah ${tag}`, email: `siti.${tag}@example.my`, mobile: `+6017${String(Date.now()).slice(-7)}` };
};
type Customer = ReturnType<typeof personal>;

async function create(customer: Customer, key = newKey()) {
  const body = { order_id: `R-${Date.now()}-${++orders}`, amount: 4200, currency: "MYR", description: "Nasi lemak", customer };
  const res = await t.app.request("/v1/payments", jsonRequest("POST", body, { ...(await bearer(t)), "Idempotency-Key": key }));
  expect(res.status).toBe(201);
  return { payment: (await res.json()) as { id: string; checkout_url: string }, body, key };
}

/** A paid payment of this customer (through the local sandbox: a real tranID, events, gateway messages). */
async function paid(customer: Customer) {
  const created = await create(customer);
  const { tranID } = await payThroughSandbox(t, created.payment.checkout_url, "approve");
  return { ...created, tranId: tranID };
}

/** Moves a payment's (and its refunds') clock back by `days`, as if that long had passed. */
async function age(id: string, days: number) {
  await db.execute(sql`update payments set updated_at = updated_at - make_interval(days => ${days}) where id = ${id}`);
  await db.execute(sql`update refunds set updated_at = updated_at - make_interval(days => ${days}) where payment_id = ${id}`);
}

const rowOf = async (id: string) => (await db.select().from(payments).where(eq(payments.id, id)))[0]!;

/** Runs retention batches until nothing is left to do. */
async function drain(deps: AppDeps = t.deps) {
  const total = { payments: 0, gatewayMessages: 0, events: 0, backfilled: 0 };
  for (;;) {
    const r = await runRetentionBatch(deps);
    for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += r[k];
    if (r.payments + r.gatewayMessages + r.events + r.backfilled === 0) return total;
  }
}

describe("retention: personal data", () => {
  it("a payment past RETENTION_PERSONAL_DATA loses its personal data and keeps its money facts", async () => {
    const customer = personal();
    const old = await paid(customer);
    const recent = await paid(customer);
    const open = await create(customer);
    // A refund with a beneficiary, settled long ago: its details go with the payment's.
    const refundId = `re_${randomBytes(8).toString("hex")}`;
    await db.insert(refunds).values({
      id: refundId,
      paymentId: old.payment.id,
      amount: 1000,
      currency: "MYR",
      status: "succeeded",
      refId: `REF${randomBytes(6).toString("hex")}`,
      beneficiary: t.deps.cipher.encrypt(
        JSON.stringify({ bank_code: "MBB0228", name: customer.name, account_number: "512345678901", country: "MY" }),
      ),
      beneficiaryMasked: { bank_code: "MBB0228", country: "MY", account_number_last4: "8901" },
      createdBy: "shop-1",
    });
    await db.execute(sql`update payments set amount_refunded = 1000, amount_refund_reserved = 1000 where id = ${old.payment.id}`);
    const before = await rowOf(old.payment.id);
    await age(old.payment.id, 401);
    await age(open.payment.id, 401);

    // The overdue gauge sees it before the job runs.
    const stats = await readDatabaseStats(t.deps, new Date());
    expect(stats.retentionOverdue!.personal_data).toBeGreaterThanOrEqual(1);
    expect(stats.tables.find((row) => row.table === "payments")!.bytes).toBeGreaterThan(0);

    await drain();

    const after = await rowOf(old.payment.id);
    expect(after).toMatchObject({ customerName: null, customerEmail: null, customerMobile: null, customerEmailHash: null });
    expect(after.erasedAt).toBeInstanceOf(Date);
    // Money facts unchanged.
    for (const field of [
      "amount",
      "currency",
      "status",
      "tranId",
      "appcode",
      "paidChannel",
      "paydate",
      "amountRefunded",
      "amountRefundReserved",
      "orderId",
      "gatewayOrderId",
      "updatedAt",
    ] as const) {
      expect(after[field]).toEqual(before[field] instanceof Date ? new Date(before[field].getTime() - 401 * 86_400_000) : before[field]);
    }
    expect(after.tranId).toBe(old.tranId);
    const [refund] = await db.select().from(refunds).where(eq(refunds.id, refundId));
    expect(refund).toMatchObject({ beneficiary: null, beneficiaryMasked: null, amount: 1000, status: "succeeded" });

    // The payment still reads, with customer null and erased_at, for the shop and in webhooks.
    const res = await t.app.request(`/v1/payments/${old.payment.id}`, { headers: await bearer(t) });
    const resource = (await res.json()) as Record<string, unknown>;
    expect(resource).toMatchObject({
      id: old.payment.id,
      status: "succeeded",
      amount: 4200,
      customer: null,
      erased_at: after.erasedAt!.toISOString(),
    });
    const eventRows = await db.select().from(events).where(eq(events.paymentId, old.payment.id));
    expect(eventRows.length).toBeGreaterThan(0);
    for (const event of eventRows) expect(event.data.customer ?? null).toBeNull();
    expect(JSON.stringify(eventRows)).not.toContain(customer.email.split("@")[0]!.slice(1));

    // Audited once, saying why; never the data.
    const audits = await db.select().from(auditLog).where(eq(auditLog.entityId, old.payment.id));
    const erasures = audits.filter((row) => row.action === "payment.personal_data_erased");
    expect(erasures).toHaveLength(1);
    expect(erasures[0]).toMatchObject({ actor: "system:retention", data: { reason: "retention" } });

    // Not yet due: the recent final payment and the open one (however old) keep their data.
    expect((await rowOf(recent.payment.id)).customerName).not.toBeNull();
    expect((await rowOf(open.payment.id)).customerName).not.toBeNull();
    expect((await readDatabaseStats(t.deps, new Date())).retentionOverdue!.personal_data).toBe(0);
  });

  it("a payment whose refund is still pending keeps its data until the refund settles", async () => {
    const customer = personal();
    const { payment } = await paid(customer);
    const refundId = `re_${randomBytes(8).toString("hex")}`;
    await db.execute(sql`update payments set amount_refund_reserved = 500 where id = ${payment.id}`);
    await db.insert(refunds).values({
      id: refundId,
      paymentId: payment.id,
      amount: 500,
      currency: "MYR",
      status: "pending",
      refId: `REF${randomBytes(6).toString("hex")}`,
      createdBy: "shop-1",
    });
    await age(payment.id, 500);
    await drain();
    expect((await rowOf(payment.id)).erasedAt).toBeNull();
    // Settled today: the clock starts again from the refund's settlement.
    await db.execute(sql`update refunds set status = 'succeeded', updated_at = now() where id = ${refundId}`);
    await drain();
    expect((await rowOf(payment.id)).erasedAt).toBeNull();
    await age(payment.id, 401);
    await drain();
    expect((await rowOf(payment.id)).erasedAt).not.toBeNull();
  });

  it("two app instances on one database erase concurrently without double work", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) {
      const { payment } = await create(personal());
      ids.push(payment.id);
    }
    // Final without Fiuu, to keep the test short: cancelled by the shop.
    await db.execute(
      sql`update payments set status = 'cancelled', updated_at = now() - interval '401 days' where id in (${sql.join(
        ids.map((id) => sql`${id}`),
        sql`, `,
      )})`,
    );
    // A second app instance, as a replica is: its own dependencies (pool on the same database on
    // real Postgres, Redis connection, metrics), its own app; the same configuration.
    let second: DatabaseHandle | undefined;
    if (t.database.url) second = await openPostgres(t.database.url, { max: 4, ssl: "disable" });
    const otherRedis = await createTestRedis();
    const other = await assembleDeps(
      t.deps.config,
      nodeOpeners({ logger: t.deps.logger, database: second ?? t.deps.database, redis: otherRedis, migrate: false }),
    );
    const otherApp = createApp(other);
    try {
      const run = async (deps: AppDeps) => {
        let erased = 0;
        for (;;) {
          const r = await runRetentionBatch(deps, { limit: 3 });
          erased += r.payments;
          if (r.payments === 0) return erased;
        }
      };
      // What a scheduler would call on each instance, at the same moment as the loops.
      const viaRoute = async (app: typeof t.app) => {
        const res = await app.request("/jobs/retention", { method: "POST", headers: await bearer(t, "system", "scheduler") });
        expect(res.status).toBe(200);
        return ((await res.json()) as { done: number }).done;
      };
      const counts = await Promise.all([run(t.deps), run(other), run(t.deps), run(other)]);
      const [a, b] = [counts[0]! + counts[2]!, counts[1]! + counts[3]!];
      // Then both instances' routes at once: nothing is left to erase again.
      expect(await Promise.all([viaRoute(t.app), viaRoute(otherApp)])).toEqual([0, 0]);
      const rows = await db.select({ id: payments.id, erasedAt: payments.erasedAt }).from(payments).where(inArray(payments.id, ids));
      expect(rows.every((row) => row.erasedAt !== null)).toBe(true);
      // Each payment erased by exactly one batch: one audit row each, and the counts add up.
      const audits = await db
        .select({ id: auditLog.entityId })
        .from(auditLog)
        .where(sql`${auditLog.action} = 'payment.personal_data_erased' and ${inArray(auditLog.entityId, ids)}`);
      expect(audits).toHaveLength(ids.length);
      expect(new Set(audits.map((row) => row.id)).size).toBe(ids.length);
      expect(a + b).toBeGreaterThanOrEqual(ids.length); // other tests' rows may be in the counts too
      if (second) {
        // Both instances did part of the work.
        expect(a).toBeGreaterThan(0);
        expect(b).toBeGreaterThan(0);
      }
    } finally {
      await second?.close();
      await otherRedis.close();
    }
  });
});

describe("retention: gateway messages and webhook bodies", () => {
  it("raw Fiuu fields and delivered webhook bodies past their time are replaced by a marker; ids, outcome and delivery records stay", async () => {
    const { payment, tranId } = await paid(personal());
    const pending = await paid(personal());
    const both = sql.join(
      [payment.id, pending.payment.id].map((id) => sql`${id}`),
      sql`, `,
    );
    await db.execute(
      sql`update gateway_messages set received_at = received_at - interval '181 days', last_received_at = last_received_at - interval '181 days' where payment_id in (${both})`,
    );
    await db.execute(sql`update events set created_at = created_at - interval '91 days' where payment_id in (${both})`);
    const [kept] = await db.select().from(events).where(eq(events.paymentId, pending.payment.id));
    // This event still has a delivery pending: its body is needed to deliver it.
    await db.execute(sql`insert into event_deliveries (event_id, receiver, status) values (${kept!.id}, 'https://shop.example/hooks', 'pending')`);
    await drain();

    const messages = await db.select().from(gatewayMessages).where(eq(gatewayMessages.paymentId, payment.id));
    expect(messages.length).toBeGreaterThan(0);
    for (const message of messages) {
      expect(message.fields).toEqual({ _erased: "retention" });
      expect(message.fieldsErasedAt).toBeInstanceOf(Date);
      expect(message.outcome).toBeTruthy();
    }
    expect(messages.some((message) => message.tranId === tranId)).toBe(true);
    const erased = await db.select().from(events).where(eq(events.paymentId, payment.id));
    expect(erased.length).toBeGreaterThan(0);
    for (const event of erased) expect(event).toMatchObject({ data: { _erased: "retention" }, type: expect.stringMatching(/^payment\./) });
    // An erased body cannot be sent again: redelivery would send the marker, not the event.
    const redeliver = await t.app.request(`/v1/events/${erased[0]!.id}/redeliver`, { method: "POST", headers: await bearer(t, "admin") });
    expect(redeliver.status).toBe(409);
    expect(((await redeliver.json()) as { detail: string }).detail).toMatch(/erased/);
    expect((await db.select().from(events).where(eq(events.id, kept!.id)))[0]!.data).toEqual(kept!.data);
    const [delivery] = await queryRows<{ status: string }>(db, sql`select status from event_deliveries where event_id = ${kept!.id}`);
    expect(delivery!.status).toBe("pending");
  });
});

describe("erasure on request", () => {
  const erase = async (email: string, role: "admin" | "service" = "admin", key = newKey()) =>
    t.app.request("/v1/customers/erase", jsonRequest("POST", { email }, { ...(await bearer(t, role, "ops-7")), "Idempotency-Key": key }));

  it("erases only that customer's final payments, found by the keyed hash of the normalised email", async () => {
    const ana = personal();
    const other = personal();
    const first = await paid(ana);
    const second = await create({ ...ana, email: ana.email.toUpperCase() });
    await db.execute(sql`update payments set status = 'failed' where id = ${second.payment.id}`);
    const theirs = await paid(other);

    expect((await erase(ana.email, "service")).status).toBe(403);
    const res = await erase(`  ${ana.email.replace("siti", "SITI")} `);
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { count: number; payment_ids: string[] };
    expect(answer).toEqual({ object: "customer_erasure", count: 2, payment_ids: [first.payment.id, second.payment.id].sort() });
    expect((await rowOf(first.payment.id)).erasedAt).not.toBeNull();
    expect((await rowOf(second.payment.id)).erasedAt).not.toBeNull();
    expect((await rowOf(theirs.payment.id)).customerEmail).not.toBeNull();

    // Audited with who asked and which payments, never the email.
    const audits = await db
      .select()
      .from(auditLog)
      .where(sql`${auditLog.action} = 'payment.personal_data_erased' and ${inArray(auditLog.entityId, answer.payment_ids)}`);
    expect(audits.map((row) => row.actor)).toEqual(["admin:ops-7", "admin:ops-7"]);
    expect(audits.every((row) => row.data.reason === "request" && row.requestId)).toBe(true);
    expect(JSON.stringify(audits)).not.toContain(ana.email.split("@")[0]);

    // Asked again: nothing left to erase.
    expect(await (await erase(ana.email)).json()).toMatchObject({ count: 0, payment_ids: [] });
  });

  it("refuses with 409 naming the open payments, and erases nothing, while one is open", async () => {
    const customer = personal();
    const done = await paid(customer);
    const open = await create(customer);
    const res = await erase(customer.email);
    expect(res.status).toBe(409);
    const problem = (await res.json()) as { code: string; open_payment_ids: string[]; detail: string };
    expect(problem.code).toBe("invalid_state");
    expect(problem.open_payment_ids).toEqual([open.payment.id]);
    expect(problem.detail).toContain(open.payment.id);
    expect((await rowOf(done.payment.id)).erasedAt).toBeNull();
  });

  it("finds payments written before the hash column (the backfill gives them one)", async () => {
    const customer = personal();
    const { payment } = await paid(customer);
    await db.execute(sql`update payments set customer_email_hash = null where id = ${payment.id}`);
    const res = await erase(customer.email);
    expect(await res.json()).toMatchObject({ count: 1, payment_ids: [payment.id] });
  });

  it("the stored hash is keyed: neither the email nor its plain SHA-256, and another key gives another hash", async () => {
    const customer = personal();
    const { payment } = await create(customer);
    const stored = (await rowOf(payment.id)).customerEmailHash!;
    expect(stored).toBe(createEmailHasher(t.deps.config.encryptionKey!).hash(customer.email));
    expect(stored).not.toContain(customer.email);
    const { createHash } = await import("node:crypto");
    expect(stored).not.toContain(createHash("sha256").update(normaliseEmail(customer.email)).digest("hex"));
    expect(createEmailHasher(randomBytes(32)).hash(customer.email).split(".")[2]).not.toBe(stored.split(".")[2]);
  });

  it("an erased payment's idempotent replay carries no personal data", async () => {
    const customer = personal();
    const { payment, body, key } = await paid(customer);
    expect((await erase(customer.email)).status).toBe(200);
    const res = await t.app.request("/v1/payments", jsonRequest("POST", body, { ...(await bearer(t)), "Idempotency-Key": key }));
    expect(res.status).toBe(201);
    expect(res.headers.get("Idempotency-Replayed")).toBe("true");
    const text = await res.text();
    expect(text).not.toContain(customer.email);
    expect(text).not.toContain(customer.name);
    expect(text).not.toContain(customer.mobile);
    expect(JSON.parse(text)).toMatchObject({ id: payment.id, customer: null, erased_at: expect.any(String) });
  });

  it("the audit chain still verifies after erasures", async () => {
    while ((await sealAuditLog(db)) > 0);
    const result = await verifyAuditChain(db);
    expect(result).toMatchObject({ intact: true, unsealed: 0 });
    expect(result.rows).toBeGreaterThan(0);
  });
});

describe.skipIf(!realPostgresUrl)("as payment_app (needs TEST_DATABASE_URL: drizzle/roles.sql applied, a real login)", () => {
  it("the retention job and erasure by email run with the runtime role's privileges", async () => {
    await applyRoles(t.database.url!);
    const handle = await openPostgres(asRole(t.database.url!, "payment_app", rolePasswords.app), { max: 2, ssl: "disable" });
    const deps: AppDeps = { ...t.deps, database: handle };
    try {
      const [role] = await queryRows<{ role: string }>(handle.db, sql`select current_user as role`);
      expect(role!.role).toBe("payment_app");
      const aged = await paid(personal());
      await age(aged.payment.id, 401);
      await db.execute(
        sql`update gateway_messages set received_at = received_at - interval '181 days', last_received_at = last_received_at - interval '181 days' where payment_id = ${aged.payment.id}`,
      );
      await db.execute(sql`update events set created_at = created_at - interval '91 days' where payment_id = ${aged.payment.id}`);
      const asked = personal();
      const requested = await paid(asked);
      await db.execute(sql`update payments set customer_email_hash = null where id = ${requested.payment.id}`);
      await drain(deps);
      expect((await rowOf(aged.payment.id)).erasedAt).not.toBeNull();
      expect((await db.select().from(gatewayMessages).where(eq(gatewayMessages.paymentId, aged.payment.id)))[0]!.fieldsErasedAt).not.toBeNull();
      const { eraseCustomerByEmail } = await import("../../lib/domain/retention/by-email.js");
      expect(await eraseCustomerByEmail(deps, asked.email, { actor: "admin:ops-7" })).toEqual([requested.payment.id]);
    } finally {
      await handle.close();
    }
  }, 60_000);
});

describe("logs", () => {
  it("no log line of this file holds a customer's name, email or mobile", () => {
    const all = t.logs.raw.join("\n");
    expect(all).not.toMatch(/siti\.[0-9a-f]{8}@example\.my/i);
    expect(all).not.toMatch(/Siti Aminah/);
    expect(all).not.toMatch(/\+6017\d{7}/);
  });
});
