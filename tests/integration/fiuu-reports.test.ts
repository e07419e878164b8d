import { sql } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../lib/app/app.js";
import { openPostgres, queryRows } from "../../lib/adapters/db/client.js";
import { openRedis } from "../../lib/adapters/redis/index.js";
import { bearer, createTestApp, jsonRequest, newKey, type TestContext } from "../support/app.js";
import { realPostgresUrl } from "../support/databases.js";
import { formPost, newTranId, signedReport } from "../support/fiuu.js";

let t: TestContext;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

const rows = <T>(query: ReturnType<typeof sql>) => queryRows<T>(t.database.handle.db, query);
let orders = 0;

async function newPayment(extra: Record<string, unknown> = {}) {
  const res = await t.app.request(
    "/v1/payments",
    jsonRequest(
      "POST",
      {
        order_id: `R-${Date.now()}-${++orders}`,
        amount: 1050,
        currency: "MYR",
        description: "Nasi lemak",
        customer: { name: "Ali", email: "ali@example.my" },
        ...extra,
      },
      { ...(await bearer(t)), "Idempotency-Key": newKey() },
    ),
  );
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; gateway: { order_id: string }; status: string };
}

const report = (
  payment: { gateway: { order_id: string } },
  status: "00" | "11" | "22",
  extra: Parameters<typeof signedReport>[1] extends infer R ? Partial<R> : never = {},
  options = {},
) => signedReport(t.deps.config.fiuu, { orderid: payment.gateway.order_id, status, amount: "10.50", ...extra }, options);

const notify = (fields: Record<string, string>) => t.app.request("/webhooks/fiuu/notify", formPost({ ...fields, nbcb: "2" }));
const callback = (fields: Record<string, string>) => t.app.request("/webhooks/fiuu/callback", formPost({ ...fields, nbcb: "1" }));
const returnUrl = (fields: Record<string, string>) => t.app.request("/webhooks/fiuu/return", formPost(fields));

const statusOf = async (id: string) => (await rows<{ status: string }>(sql`select status from payments where id = ${id}`))[0]!.status;
const eventsOf = async (id: string) =>
  (await rows<{ type: string }>(sql`select type from events where payment_id = ${id} order by id`)).map((e) => e.type);
const messagesOf = async (id: string) =>
  (await rows<{ kind: string; outcome: string }>(sql`select kind, outcome from gateway_messages where payment_id = ${id} order by id`)).map(
    (m) => `${m.kind}:${m.outcome}`,
  );

describe("notification, callback and return", () => {
  it("applies a signed notification once, answers OK, and queues the IPN echo", async () => {
    const payment = await newPayment();
    const fields = report(payment, "00");
    const res = await notify(fields);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("OK");
    expect(await statusOf(payment.id)).toBe("succeeded");
    expect(await eventsOf(payment.id)).toEqual(["payment.succeeded"]);
    expect(await messagesOf(payment.id)).toEqual(["notification:applied"]);
    const [stored] = await rows<{ tran_id: string; appcode: string; paid_channel: string }>(
      sql`select tran_id, appcode, paid_channel from payments where id = ${payment.id}`,
    );
    expect(stored).toEqual({ tran_id: fields.tranID, appcode: "123456", paid_channel: "maybank2u" });
    const echo = await rows<{ payload: { fields: Record<string, string> } }>(
      sql`select payload from jobs where kind = 'ipn_echo' and dedupe_key like ${`ipn_echo:${fields.tranID}:%`}`,
    );
    expect(echo).toHaveLength(1);
    expect(echo[0]!.payload.fields).toEqual({ ...fields, nbcb: "2" });
    const audit = await rows<{ actor: string; action: string }>(sql`select actor, action from audit_log where entity_id = ${payment.id} order by id`);
    expect(audit.at(-1)).toEqual({ actor: "fiuu:notification", action: "payment.succeeded" });
  });

  it("answers a callback with exactly CBTOKEN:MPSTATOK", async () => {
    const payment = await newPayment();
    const res = await callback(report(payment, "11"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toBe("CBTOKEN:MPSTATOK");
    expect(await statusOf(payment.id)).toBe("failed");
    const [row] = await rows<{ failure_code: string; failure_message: string }>(
      sql`select failure_code, failure_message from payments where id = ${payment.id}`,
    );
    expect(row).toEqual({ failure_code: "FPX_1A", failure_message: "Declined by bank" });
  });

  it("treats a report by its nbcb whichever URL it arrives at", async () => {
    const payment = await newPayment();
    const res = await t.app.request("/webhooks/fiuu/notify", formPost({ ...report(payment, "22"), nbcb: "1" }));
    expect(res.status).toBe(200);
    expect(await messagesOf(payment.id)).toEqual(["callback:applied"]);
  });

  it("sends the shopper from the return URL to the shop's return_url with payment_id and status", async () => {
    const payment = await newPayment({ return_url: "https://shop.example/thanks?cart=9" });
    const res = await returnUrl(report(payment, "00"));
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`https://shop.example/thanks?cart=9&payment_id=${payment.id}&status=succeeded`);
  });

  it("sends the shopper to the built-in result page when the payment has no return_url, by POST or GET", async () => {
    const payment = await newPayment();
    const res = await t.app.request(`/webhooks/fiuu/return?${new URLSearchParams(report(payment, "22"))}`);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`http://payments.test/pay/${payment.id}/result`);
    const page = await (await t.app.request(`/pay/${payment.id}/result`)).text();
    expect(page).toContain('data-testid="payment-status">pending<');
    expect(page).toContain('http-equiv="refresh"');
  });

  it("changes the state once and emits one event for 20 identical reports at once over all three URLs", async () => {
    const payment = await newPayment();
    const fields = report(payment, "00");
    const sends = Array.from({ length: 20 }, (_, i) => [notify, callback, returnUrl][i % 3]!(fields));
    const answers = await Promise.all(sends);
    for (const a of answers) expect([200, 303]).toContain(a.status);
    expect(await statusOf(payment.id)).toBe("succeeded");
    expect(await eventsOf(payment.id)).toEqual(["payment.succeeded"]);
    // One row per kind of message (their nbcb differ); each repeat is counted on its row, not stored again.
    const stored = await rows<{ kind: string; outcome: string; times_received: number }>(
      sql`select kind, outcome, times_received from gateway_messages where payment_id = ${payment.id} order by id`,
    );
    expect(stored.map((m) => m.kind).sort()).toEqual(["callback", "notification", "return"]);
    expect(stored.filter((m) => m.outcome === "applied")).toHaveLength(1);
    expect(stored.filter((m) => m.outcome === "duplicate")).toHaveLength(2);
    expect(stored.reduce((sum, m) => sum + Number(m.times_received), 0)).toBe(20);
  });
});

describe("reports that are not believed", () => {
  it("refuses a forged skey with 400, changes nothing, and schedules one requery instead", async () => {
    const payment = await newPayment();
    const forged = report(payment, "00", {}, { secretKey: "guessed" });
    for (let i = 0; i < 3; i++) {
      const res = await notify(forged);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe("invalid_request");
    }
    expect(await statusOf(payment.id)).toBe("created");
    expect(await eventsOf(payment.id)).toEqual([]);
    // The same forgery three times is one stored message, counted three times.
    const stored = await rows<{ outcome: string; times_received: number }>(
      sql`select outcome, times_received from gateway_messages where payment_id = ${payment.id}`,
    );
    expect(stored).toEqual([{ outcome: "rejected", times_received: 3 }]);
    const jobs = await rows<{ kind: string }>(sql`select kind from jobs where dedupe_key = ${`requery:${payment.id}`} and status = 'pending'`);
    expect(jobs).toEqual([{ kind: "requery" }]);
  });

  it.each(["skey", "tranID", "status", "amount", "currency", "paydate", "domain", "orderid"])("refuses a report without %s", async (field) => {
    const payment = await newPayment();
    const fields = report(payment, "00");
    delete fields[field];
    const res = await notify(fields);
    expect(res.status).toBe(400);
    expect(await statusOf(payment.id)).toBe("created");
  });

  it("refuses a truncated skey and a report signed over another amount", async () => {
    const payment = await newPayment();
    const fields = report(payment, "00");
    expect((await notify({ ...fields, skey: fields.skey!.slice(0, 20) })).status).toBe(400);
    // Signed over "10.50" but sent as "10.5": the skey covers the exact string.
    expect((await notify(report(payment, "00", { amount: "10.5" }, { signAmount: "10.50" }))).status).toBe(400);
    expect(await statusOf(payment.id)).toBe("created");
  });

  it("refuses a signed amount that is not written with 2 decimals (Fiuu always writes them), and requeries instead", async () => {
    const payment = await newPayment();
    const res = await notify(report(payment, "00", { amount: "10.5" }));
    expect(res.status).toBe(400);
    expect(await statusOf(payment.id)).toBe("created");
    expect(await messagesOf(payment.id)).toEqual(["notification:rejected"]);
    expect(await rows(sql`select 1 from jobs where dedupe_key = ${`requery:${payment.id}`} and status = 'pending'`)).toHaveLength(1);
  });

  it("refuses the 10.5 + 0MYR re-split of a genuine skey as malformed: never conflicted, nothing changes", async () => {
    const payment = await newPayment();
    // The skey joins amount and currency with no separator, so this genuine signature over
    // "10.50" + "MYR" also verifies for "10.5" + "0MYR".
    const genuine = report(payment, "00");
    const resplit = { ...genuine, amount: "10.5", currency: "0MYR" };
    const res = await notify(resplit);
    expect(res.status).toBe(400);
    expect(await statusOf(payment.id)).toBe("created");
    expect(await eventsOf(payment.id)).toEqual([]);
    const [row] = await rows<{ signature_valid: boolean; outcome: string; detail: string }>(
      sql`select signature_valid, outcome, detail from gateway_messages where payment_id = ${payment.id}`,
    );
    expect(row).toMatchObject({ signature_valid: true, outcome: "rejected" });
    // The genuine report still applies afterwards.
    expect((await notify(genuine)).status).toBe(200);
    expect(await statusOf(payment.id)).toBe("succeeded");
  });

  it("refuses a currency that is not a supported ISO code even when signed", async () => {
    const payment = await newPayment();
    const res = await notify(report(payment, "00", { currency: "XYZ" }));
    expect(res.status).toBe(400);
    expect(await statusOf(payment.id)).toBe("created");
  });

  it("refuses a form that is not form-encoded", async () => {
    const res = await t.app.request("/webhooks/fiuu/notify", jsonRequest("POST", { status: "00" }));
    expect(res.status).toBe(400);
  });

  it("acknowledges and stores a signed report for an unknown order as an orphan", async () => {
    const fields = signedReport(t.deps.config.fiuu, { orderid: "payUNKNOWN123", status: "00", amount: "5.00", nbcb: "2" });
    const res = await notify(fields);
    expect(res.status).toBe(200);
    const stored = await rows<{ outcome: string }>(sql`select outcome from gateway_messages where order_id = 'payUNKNOWN123'`);
    expect(stored).toEqual([{ outcome: "orphan" }]);
    expect(t.logs.lines.some((l) => l.level === "error" && String(l.msg).includes("orphan"))).toBe(true);
  });
});

describe("what a signed report is believed for", () => {
  it("does not fail a payment on a return URL's 11: it stores it as deferred and brings the requery forward", async () => {
    const payment = await newPayment({ return_url: "https://shop.example/back" });
    const res = await returnUrl(report(payment, "11"));
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`https://shop.example/back?payment_id=${payment.id}&status=created`);
    expect(await statusOf(payment.id)).toBe("created");
    expect(await eventsOf(payment.id)).toEqual([]);
    expect(await messagesOf(payment.id)).toEqual(["return:deferred"]);
    const [job] = await rows<{ run_at: Date }>(sql`select run_at from jobs where dedupe_key = ${`requery:${payment.id}`} and status = 'pending'`);
    expect(new Date(job!.run_at).getTime()).toBeLessThanOrEqual(Date.now());
  });

  it("applies a server-to-server 11 at once, with its error code", async () => {
    const payment = await newPayment();
    expect((await notify(report(payment, "11"))).status).toBe(200);
    expect(await statusOf(payment.id)).toBe("failed");
  });

  it("takes no unsigned field from the return URL; a later notification fills the channel in", async () => {
    const payment = await newPayment();
    const fields: Record<string, string> = { ...report(payment, "00"), channel: "made-up-by-browser", error_desc: "<script>", extraP: "{}" };
    expect((await returnUrl(fields)).status).toBe(303);
    const before = await rows<{ status: string; paid_channel: string | null }>(
      sql`select status, paid_channel from payments where id = ${payment.id}`,
    );
    expect(before).toEqual([{ status: "succeeded", paid_channel: null }]);
    expect((await notify(report(payment, "00", { tranID: fields.tranID }))).status).toBe(200);
    const after = await rows<{ paid_channel: string | null }>(sql`select paid_channel from payments where id = ${payment.id}`);
    expect(after).toEqual([{ paid_channel: "maybank2u" }]);
  });

  it("echoes a return's signed fields only, never what a browser added", async () => {
    const payment = await newPayment();
    const fields = report(payment, "00");
    await returnUrl({ ...fields, injected: "x".repeat(50), channel: "browser" });
    const [echo] = await rows<{ payload: { fields: Record<string, string> } }>(
      sql`select payload from jobs where kind = 'ipn_echo' and dedupe_key = ${`ipn_echo:${fields.tranID}:00:return`}`,
    );
    const signedNames = ["tranID", "orderid", "status", "domain", "amount", "currency", "paydate", "appcode", "skey"];
    expect(Object.keys(echo!.payload.fields).sort()).toEqual(signedNames.sort());
    for (const name of signedNames) expect(echo!.payload.fields[name]).toBe(fields[name]);
  });

  it("echoes a notification's documented fields exactly, without fields Fiuu does not send", async () => {
    const payment = await newPayment();
    const fields = report(payment, "00");
    await notify({ ...fields, injected: "1" });
    const [echo] = await rows<{ payload: { fields: Record<string, string> } }>(
      sql`select payload from jobs where kind = 'ipn_echo' and dedupe_key = ${`ipn_echo:${fields.tranID}:00:notification`}`,
    );
    expect(echo!.payload.fields).toEqual({ ...fields, nbcb: "2" });
  });

  it("stores only Fiuu's documented fields, each length-capped", async () => {
    const payment = await newPayment();
    const fields: Record<string, string> = { ...report(payment, "22"), extraP: "e".repeat(5000), error_desc: "d".repeat(1000), unknown_field: "u" };
    expect((await notify(fields)).status).toBe(200);
    const [row] = await rows<{ fields: Record<string, string> }>(sql`select fields from gateway_messages where payment_id = ${payment.id}`);
    expect(row!.fields.unknown_field).toBeUndefined();
    expect(row!.fields.extraP!.length).toBeLessThanOrEqual(2048);
    expect(row!.fields.error_desc!.length).toBeLessThanOrEqual(255);
    expect(row!.fields.tranID).toBe(fields.tranID);
  });

  it("verifies a report without appcode with appcode hashed as empty", async () => {
    const payment = await newPayment();
    const fields = report(payment, "00", { appcode: "" });
    delete fields.appcode;
    expect((await notify(fields)).status).toBe(200);
    expect(await statusOf(payment.id)).toBe("succeeded");
  });

  it("answers by nbcb, not by path: a callback at /notify gets CBTOKEN:MPSTATOK, a notification at /callback gets OK", async () => {
    const a = await newPayment();
    const atNotify = await t.app.request("/webhooks/fiuu/notify", formPost({ ...report(a, "00"), nbcb: "1" }));
    expect(await atNotify.text()).toBe("CBTOKEN:MPSTATOK");
    const b = await newPayment();
    const atCallback = await t.app.request("/webhooks/fiuu/callback", formPost({ ...report(b, "00"), nbcb: "2" }));
    expect(await atCallback.text()).toBe("OK");
  });

  it("refuses a body over 16 KB on Fiuu's URLs with 413 and stores nothing", async () => {
    const payment = await newPayment();
    const fields = { ...report(payment, "00"), nbcb: "2", padding: "p".repeat(17 * 1024) };
    for (const path of ["/webhooks/fiuu/notify", "/webhooks/fiuu/callback", "/webhooks/fiuu/return", "/webhooks/fiuu/refund"]) {
      const res = await t.app.request(path, formPost(fields));
      expect(res.status, path).toBe(413);
      expect(res.headers.get("content-type")).toMatch(/problem\+json/);
    }
    expect(await statusOf(payment.id)).toBe("created");
    expect(await messagesOf(payment.id)).toEqual([]);
  });

  it("labels an unlisted channel as other in payments_total, never as the text Fiuu sent", async () => {
    const payment = await newPayment();
    const fields = signedReport(t.deps.config.fiuu, { orderid: payment.gateway.order_id, status: "00", amount: "10.50" });
    expect((await notify({ ...fields, channel: "free-text-channel-42" })).status).toBe(200);
    const text = await t.deps.metrics.registry.getSingleMetricAsString("payments_total");
    expect(text).not.toContain("free-text-channel-42");
    expect(text).toMatch(/payments_total\{status="succeeded",channel="other"\} [1-9]/);
  });
});

describe("the state machine through HTTP", () => {
  it("records a late 11 after success as stale", async () => {
    const payment = await newPayment();
    const tranID = newTranId();
    await notify(report(payment, "00", { tranID }));
    expect((await callback(report(payment, "11", { tranID }))).status).toBe(200);
    expect(await statusOf(payment.id)).toBe("succeeded");
    expect(await messagesOf(payment.id)).toEqual(["notification:applied", "callback:stale"]);
  });

  it("moves 22 then 00 through pending to succeeded", async () => {
    const payment = await newPayment();
    const tranID = newTranId();
    await notify(report(payment, "22", { tranID }));
    expect(await statusOf(payment.id)).toBe("pending");
    await callback(report(payment, "00", { tranID }));
    expect(await statusOf(payment.id)).toBe("succeeded");
    expect(await eventsOf(payment.id)).toEqual(["payment.pending", "payment.succeeded"]);
  });

  it("records a success after cancel as a late success", async () => {
    const payment = await newPayment();
    await t.app.request(`/v1/payments/${payment.id}/cancel`, { method: "POST", headers: { ...(await bearer(t)), "Idempotency-Key": newKey() } });
    await notify(report(payment, "00"));
    expect(await statusOf(payment.id)).toBe("succeeded");
    expect(await eventsOf(payment.id)).toEqual(["payment.cancelled", "payment.late_success"]);
  });

  it("records a success after expiry as a late success", async () => {
    const payment = await newPayment();
    await t.database.handle.db.execute(sql`update payments set status = 'expired' where id = ${payment.id}`);
    await notify(report(payment, "00"));
    expect(await statusOf(payment.id)).toBe("succeeded");
    expect(await eventsOf(payment.id)).toEqual(["payment.late_success"]);
  });

  it("emits payment.duplicate_charge for a second successful tranID", async () => {
    const payment = await newPayment();
    await notify(report(payment, "00"));
    await notify(report(payment, "00"));
    expect(await eventsOf(payment.id)).toEqual(["payment.succeeded", "payment.duplicate_charge"]);
    expect(await statusOf(payment.id)).toBe("succeeded");
  });

  it("moves a payment to conflicted when a signed report names another amount", async () => {
    const payment = await newPayment();
    await notify(report(payment, "00", { amount: "1.00" }));
    expect(await statusOf(payment.id)).toBe("conflicted");
    expect(await eventsOf(payment.id)).toEqual(["payment.conflicted"]);
  });
});

describe("dependencies", () => {
  it("processes reports with Redis unreachable", async () => {
    const deadRedis = await openRedis({ kind: "tcp", host: "127.0.0.1", port: 1, db: 0, maxConnections: 1 });
    try {
      const app = createApp({ ...t.deps, redis: deadRedis.redis });
      const payment = await newPayment();
      const res = await app.request("/webhooks/fiuu/notify", formPost({ ...report(payment, "00"), nbcb: "2" }));
      expect(res.status).toBe(200);
      expect(await statusOf(payment.id)).toBe("succeeded");
    } finally {
      await deadRedis.close();
    }
  });

  it("answers 503 when the database is unreachable, so Fiuu sends the report again", async () => {
    const unreachable = await openPostgres("postgres://nobody@127.0.0.1:1/none", { ssl: "disable" });
    try {
      const app = createApp({ ...t.deps, database: unreachable });
      const payment = await newPayment();
      const res = await app.request("/webhooks/fiuu/notify", formPost({ ...report(payment, "00"), nbcb: "2" }));
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBeTruthy();
      expect(await statusOf(payment.id)).toBe("created");
    } finally {
      await unreachable.close();
    }
  });
});

describe("GET /v1/events", () => {
  it("lists events newest first for an admin, filtered by type", async () => {
    const payment = await newPayment();
    const tranID = newTranId();
    await notify(report(payment, "22", { tranID }));
    await notify(report(payment, "00", { tranID }));
    const admin = await bearer(t, "admin");
    const res = await t.app.request(`/v1/events?payment_id=${payment.id}`, { headers: admin });
    const body = (await res.json()) as { object: string; data: { type: string; data: { id: string; status: string } }[]; has_more: boolean };
    expect(body.object).toBe("list");
    expect(body.data.map((e) => e.type)).toEqual(["payment.succeeded", "payment.pending"]);
    expect(body.data[0]!.data).toMatchObject({ id: payment.id, status: "succeeded" });
    const filtered = (await (
      await t.app.request(`/v1/events?payment_id=${payment.id}&type=payment.pending`, { headers: admin })
    ).json()) as typeof body;
    expect(filtered.data.map((e) => e.type)).toEqual(["payment.pending"]);
    expect((await t.app.request("/v1/events", { headers: await bearer(t, "service") })).status).toBe(403);
  });
});

// A report is decided on the payment as read without a lock, and written in one statement that
// applies only while the payment's row version is the one read (lib/adapters/db/batch.ts,
// executeIfUnchanged). These hold another writer's change open across the report's read, on a
// connection of their own: a real PostgreSQL only (PGlite has one connection).
describe.skipIf(!realPostgresUrl)("a payment that changes between a report's read and its write", () => {
  /** Runs `change` in a transaction of its own, calls `send` while it holds the row, then commits it. */
  async function whileChanging(change: ReturnType<typeof sql>, send: () => Response | Promise<Response>) {
    const other = postgres(t.database.url!, { max: 1, onnotice: () => {} });
    try {
      let answer: Promise<Response> | undefined;
      await other.begin(async (tx) => {
        await tx.unsafe(...flat(change));
        answer = Promise.resolve(send());
        // Until the report's guarded write waits on this transaction's row lock: its read is done.
        for (let waited = 0; ; waited += 20) {
          const [waiting] = await tx`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`;
          if (waiting!.n > 0) break;
          if (waited > 5_000) throw new Error("the report never waited on the payment's row");
          await new Promise((r) => setTimeout(r, 20));
        }
      });
      return await answer!;
    } finally {
      await other.end();
    }
  }
  const flat = (query: ReturnType<typeof sql>) => {
    const built = new PgDialect().sqlToQuery(query);
    return [built.sql, built.params as never[]] as const;
  };

  it("decides again on the payment as the other writer left it: a success on a payment cancelled meanwhile is a late success", async () => {
    const payment = await newPayment();
    const res = await whileChanging(sql`update payments set status = 'cancelled' where id = ${payment.id}`, () => notify(report(payment, "00")));
    expect(res.status).toBe(200);
    expect(await statusOf(payment.id)).toBe("succeeded");
    expect(await eventsOf(payment.id)).toEqual(["payment.late_success"]);
    const stored = await rows<{ outcome: string; detail: string }>(
      sql`select outcome, detail from gateway_messages where payment_id = ${payment.id}`,
    );
    expect(stored).toEqual([{ outcome: "applied", detail: "success after cancelled" }]);
    const audit = await rows<{ action: string; data: { from: string } }>(
      sql`select action, data from audit_log where entity_id = ${payment.id} and actor = 'fiuu:notification'`,
    );
    expect(audit.map((a) => [a.action, a.data.from])).toEqual([["payment.succeeded", "cancelled"]]);
  });

  it("applies a report once when the payment changed under it: one event, one message, one echo job", async () => {
    const payment = await newPayment();
    const fields = report(payment, "00");
    const res = await whileChanging(sql`update payments set updated_at = now() where id = ${payment.id}`, () => notify(fields));
    expect(res.status).toBe(200);
    expect(await statusOf(payment.id)).toBe("succeeded");
    expect(await eventsOf(payment.id)).toEqual(["payment.succeeded"]);
    expect(await messagesOf(payment.id)).toEqual(["notification:applied"]);
    const [times] = await rows<{ times_received: number }>(sql`select times_received from gateway_messages where payment_id = ${payment.id}`);
    expect(Number(times!.times_received)).toBe(1);
    const echoes = await rows(sql`select id from jobs where kind = 'ipn_echo' and dedupe_key like ${`ipn_echo:${fields.tranID}:%`}`);
    expect(echoes).toHaveLength(1);
  });

  it("guards a decision that changes nothing of the payment too: a repeated 22 on a payment that succeeded meanwhile is stale", async () => {
    const payment = await newPayment();
    const pending = report(payment, "22");
    expect((await notify(pending)).status).toBe(200);
    const res = await whileChanging(sql`update payments set status = 'succeeded' where id = ${payment.id}`, () => callback(pending));
    expect(await res.text()).toBe("CBTOKEN:MPSTATOK");
    // Decided on the pending payment it read, the callback would be a duplicate (and ask for a requery).
    expect(await messagesOf(payment.id)).toEqual(["notification:applied", "callback:stale"]);
    expect(await eventsOf(payment.id)).toEqual(["payment.pending"]);
  });
});
