import { createHash } from "node:crypto";
import { desc, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { jobs } from "../../drizzle/schema.js";
import { queryRows } from "../../lib/adapters/db/client.js";
import { querySlotKey, requerySchedule, resultPageRequeryKey } from "../../lib/domain/payments/reconcile.js";
import { bearer, createTestApp, type TestContext } from "../support/app.js";
import { createPayment } from "../support/flow.js";

// Requery and expiry as Fiuu answers them (FIUU.md §3). A fake Fiuu in front of the service answers
// each requery in Fiuu's own plain-text format (type=0, `Key: Value` lines) with the status or
// error code a test chooses; everything else goes to the local sandbox. What is checked is what the
// shop and Fiuu see: the jobs run over HTTP, the payment's state and jobs rows in the database, and
// the queries sent to Fiuu.
//
// FIUU_QUERY_INTERVAL is 10 s here, so a query holds the merchant's slot (a Redis key with a real
// TTL) for the rest of a test step; `nextSlot()` stands for the interval passing: it frees the key
// and moves the service's clock on past it.

const md5 = (text: string) => createHash("md5").update(text, "utf8").digest("hex");

type Answer = (form: Record<string, string>) => string | Response;

let t: TestContext;
// The service's clock: frozen at the start of the file plus what the test moves it on by.
const base = Date.now();
let clock = 0;
const asked: Record<string, string>[] = [];
const answers = new Map<string, Answer>();

beforeAll(async () => {
  t = await createTestApp({
    env: { FIUU_QUERY_INTERVAL: "10s" },
    now: () => new Date(base + clock),
    fiuuFetch: async (request) => {
      const url = new URL(request.url);
      if (!/(q_by_oid|q_by_tid|gate-query\/index)\.php$/.test(url.pathname)) return t.app.fetch(request);
      const form = Object.fromEntries(new URLSearchParams(await request.text()));
      asked.push(form);
      const body = (answers.get(form.oID ?? form.txID ?? "") ?? refusal("Q203", "Transaction record not found"))(form);
      return typeof body === "string" ? new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } }) : body;
    },
  });
});
afterAll(() => t.close());

beforeEach(async () => {
  // Each test starts with no other payment waiting to be asked about, a free slot and no answers.
  await t.database.handle.db.execute(sql`update jobs set status = 'done' where status = 'pending' and kind in ('requery', 'expire')`);
  await t.database.handle.db.execute(sql`update payments set status = 'cancelled' where status in ('created', 'pending')`);
  await t.deps.redis.del(slotKey());
  asked.length = 0;
  answers.clear();
  clock = 0;
});

const merchantId = () => t.deps.config.fiuu.merchantId!;
const slotKey = () => querySlotKey(merchantId());
const nextSlot = async (ms = 11_000) => {
  await t.deps.redis.del(slotKey());
  clock += ms;
};
const minutes = (n: number) => n * 60_000;

// --- Fiuu's answers, as q_by_oid writes them ---------------------------------------------------

const lines = (fields: Record<string, string>) =>
  `${Object.entries(fields)
    .map(([name, value]) => `${name}: ${value}`)
    .join("\n")}\n`;
const tranIds = new Map<string, string>();
const tranIdOf = (orderId: string) =>
  tranIds.get(orderId) ?? (tranIds.set(orderId, `3${String(tranIds.size + 1).padStart(10, "0")}`), tranIds.get(orderId)!);

/** A transaction's status, signed with a VrfKey over the answer's own strings. */
const transaction =
  (statCode: "00" | "11" | "22", overrides: Record<string, string> = {}): Answer =>
  (form) =>
    lines({
      StatCode: statCode,
      StatName: { "00": "captured", "11": "failed", "22": "pending" }[statCode],
      OrderID: form.oID!,
      Amount: form.amount!,
      TranID: tranIdOf(form.oID!),
      Domain: merchantId(),
      BillingDate: "2026-12-01 10:15:00",
      BillingName: "Mei Ling",
      VrfKey: md5(form.amount! + t.deps.config.fiuu.secretKey! + merchantId() + form.oID! + statCode),
      Channel: "FPX_MB2U",
      Currency: "MYR",
      ErrorCode: "",
      ErrorDesc: "",
      ...overrides,
    });
/** An error answer: ErrorCode and ErrorDesc only. */
const refusal =
  (code: string, description = "Refused"): Answer =>
  () =>
    lines({ ErrorCode: code, ErrorDesc: description });
/** "Not found" written with dashes, as in the q_by_oids example. */
const dashes: Answer = (form) =>
  lines({
    StatCode: "-",
    StatName: "-",
    OrderID: form.oID!,
    Amount: "-",
    TranID: "-",
    Domain: "-",
    VrfKey: "-",
    Channel: "-",
    Currency: "-",
    ErrorCode: "-",
    ErrorDesc: "-",
  });

// --- The service, as the shop, the shopper and a scheduler use it -----------------------------

async function runJobs(group: "reconcile" | "expire") {
  const res = await t.app.request(`/jobs/${group}`, { method: "POST", headers: await bearer(t, "system", "scheduler") });
  expect(res.status).toBe(200);
  return (await res.json()) as { claimed: number; done: number; retried: number; failed: number };
}
const reconcile = () => runJobs("reconcile");
const expire = () => runJobs("expire");

/** A payment whose checkout page the shopper opened (its first requery due a minute later). */
async function checkedOut() {
  const payment = await createPayment(t);
  expect((await t.app.request(payment.checkout_url)).status).toBe(200);
  return { id: payment.id, orderId: payment.gateway.order_id };
}

const rows = <T>(query: ReturnType<typeof sql>) => queryRows<T>(t.database.handle.db, query);
const statusOf = async (id: string) => (await rows<{ status: string }>(sql`select status from payments where id = ${id}`))[0]!.status;
const eventsOf = async (id: string) =>
  (await rows<{ type: string }>(sql`select type from events where payment_id = ${id} order by id`)).map((e) => e.type);
const jobOf = async (id: string, kind: "requery" | "expire" = "requery") =>
  (
    await t.database.handle.db
      .select()
      .from(jobs)
      .where(eq(jobs.dedupeKey, `${kind}:${id}`))
      .orderBy(desc(jobs.id))
      .limit(1)
  )[0]!;
const askedFor = () => asked.map((form) => form.oID);
const now = () => t.deps.now().getTime();
const misconfigured = async (code: string) =>
  (await t.deps.metrics.fiuuMisconfigured.get()).values.find((v) => v.labels.operation === "requery" && v.labels.code === code)?.value ?? 0;

describe("the requery job", () => {
  it("asks q_by_oid once, as type=0 with the right skey, and applies a verified 00 with the answer's own facts", async () => {
    const payment = await checkedOut();
    answers.set(payment.orderId, transaction("00"));
    await reconcile(); // not due for a minute
    expect(asked).toEqual([]);

    clock = minutes(2);
    await reconcile();
    const { fiuu } = t.deps.config;
    expect(asked).toEqual([
      {
        amount: "25.90",
        oID: payment.orderId,
        domain: fiuu.merchantId,
        type: "0",
        skey: md5(`${payment.orderId + fiuu.merchantId + fiuu.verifyKey}25.90`),
      },
    ]);
    expect(await statusOf(payment.id)).toBe("succeeded");
    expect(await eventsOf(payment.id)).toEqual(["payment.succeeded"]);
    const messages = await rows<{ kind: string; outcome: string; fields: Record<string, string> }>(
      sql`select kind, outcome, fields from gateway_messages where payment_id = ${payment.id}`,
    );
    // The requery's answer itself is what is stored: no notification was made up for it.
    expect(messages).toEqual([
      {
        kind: "requery",
        outcome: "applied",
        fields: expect.objectContaining({ StatCode: "00", TranID: tranIdOf(payment.orderId), VrfKey: expect.any(String) }),
      },
    ]);
    const paid = await rows<{ tran_id: string; paid_channel: string }>(sql`select tran_id, paid_channel from payments where id = ${payment.id}`);
    expect(paid).toEqual([{ tran_id: tranIdOf(payment.orderId), paid_channel: "FPX_MB2U" }]);
    expect((await jobOf(payment.id)).status).toBe("done");
  });

  it("asks about a pending payment again and again, backing off to every 30 minutes, every 6 hours after a week, and stops after 30 days", async () => {
    const payment = await checkedOut();
    answers.set(payment.orderId, transaction("22"));
    const pauseAfterAsking = async (at: number) => {
      clock = at;
      await nextSlot(0);
      const before = asked.length;
      await reconcile();
      expect(asked.length).toBe(before + 1);
      const job = await jobOf(payment.id);
      expect(job).toMatchObject({ status: "pending", lockedUntil: null });
      return job.runAt.getTime() - now();
    };
    expect(await pauseAfterAsking(minutes(2))).toBe(minutes(1));
    expect(await statusOf(payment.id)).toBe("pending");
    expect(await pauseAfterAsking(minutes(20))).toBe(minutes(10));
    expect(await pauseAfterAsking(minutes(180))).toBe(requerySchedule.maxIntervalMs);
    expect(await pauseAfterAsking(8 * 24 * 60 * 60_000)).toBe(6 * 60 * 60_000);

    // Past q_by_oid's 30-day window nothing is asked any more.
    clock = 30 * 24 * 60 * 60_000 + minutes(1);
    await nextSlot(0);
    const before = asked.length;
    await reconcile();
    expect(asked.length).toBe(before);
    expect((await jobOf(payment.id)).status).toBe("done");
    expect(await statusOf(payment.id)).toBe("pending");
  });

  it("leaves a created payment to the expiry job once its time is up, without asking", async () => {
    const payment = await checkedOut();
    clock = minutes(31);
    await reconcile();
    expect(asked).toEqual([]);
    expect((await jobOf(payment.id)).status).toBe("done");
  });
});

describe("FIUU.md §3's answers and error codes, through the jobs", () => {
  it.each([
    ["Q203", refusal("Q203", "Transaction record not found")],
    ["Q303", refusal("Q303", "Transaction record not found")],
    ["Q00005", refusal("Q00005", "Transaction record not found")],
    ["StatCode -", dashes],
  ])("not found (%s): a checkout stays created while it may still be paid, then expires", async (_name, answer) => {
    const payment = await checkedOut();
    answers.set(payment.orderId, answer);
    clock = minutes(2);
    await reconcile();
    expect(asked).toHaveLength(1);
    expect(await statusOf(payment.id)).toBe("created");
    const job = await jobOf(payment.id);
    expect(job).toMatchObject({ status: "pending", attempts: 1 });
    expect(job.lastError).toMatch(/no transaction/);
    expect(job.runAt.getTime()).toBeGreaterThan(now());

    clock = minutes(31);
    await nextSlot(0);
    await expire();
    expect(asked).toHaveLength(2);
    expect(asked[1]).toMatchObject({ oID: payment.orderId, type: "0" });
    expect(await statusOf(payment.id)).toBe("expired");
    expect(await eventsOf(payment.id)).toEqual(["payment.expired"]);
  });

  it("a transaction Fiuu knows decides an expiring payment's fate: a last-second 00 is recorded, not expired", async () => {
    const payment = await checkedOut();
    answers.set(payment.orderId, transaction("00"));
    clock = minutes(31);
    await expire();
    expect(await statusOf(payment.id)).toBe("succeeded");
  });

  it.each(["Q03", "Q00007", "Q00008", "Q05"])("busy (%s): nothing changes, the query is not resent, and it is asked again later", async (code) => {
    const payment = await checkedOut();
    answers.set(payment.orderId, refusal(code, "System is busy now, temporary out of services. Please try again later."));
    clock = minutes(2);
    await reconcile();
    expect(asked).toHaveLength(1);
    expect(await statusOf(payment.id)).toBe("created");
    const job = await jobOf(payment.id);
    expect(job).toMatchObject({ status: "pending", attempts: 1, lockedUntil: null });
    expect(job.lastError).toContain(code);
    const wait = job.runAt.getTime() - now();
    expect(wait).toBeGreaterThanOrEqual(minutes(1));
    expect(wait).toBeLessThanOrEqual(minutes(1.25));

    await nextSlot(0); // the slot is free again, but the job is not due yet
    await reconcile();
    expect(asked).toHaveLength(1);
    expect(await misconfigured(code)).toBe(0);

    answers.set(payment.orderId, transaction("00"));
    clock += wait;
    await reconcile();
    expect(asked).toHaveLength(2);
    expect(await statusOf(payment.id)).toBe("succeeded");
  });

  it("Q99: no query of the merchant at all for 5 minutes, on every replica, and the waiting jobs keep their place", async () => {
    const first = await checkedOut();
    clock = 1_000;
    const second = await checkedOut();
    clock = 2_000;
    const expiring = await checkedOut();
    answers.set(first.orderId, refusal("Q99", "Service blocked due to massive connection. Please send only 1 request every 5 minutes."));

    clock = minutes(2);
    const firstDue = (await jobOf(first.id)).runAt;
    await reconcile();
    // One query, answered Q99: not resent, and nothing else asked.
    expect(askedFor()).toEqual([first.orderId]);
    // The merchant's slot is held in Redis for 5 minutes, where every replica looks before asking.
    expect(await t.deps.redis.get(slotKey())).toBe("Q99");
    const held = await t.deps.redis.pttl(slotKey());
    expect(held).toBeGreaterThan(minutes(5) - 5_000);
    expect(held).toBeLessThanOrEqual(minutes(5));
    for (const payment of [first, second]) {
      const job = await jobOf(payment.id);
      expect(job).toMatchObject({ status: "pending", attempts: 0 });
      expect(job.lockedUntil!.getTime()).toBeGreaterThan(now() + minutes(5) - 5_000);
    }
    expect((await jobOf(first.id)).runAt).toEqual(firstDue);

    // Four minutes on: still nothing asked, not even the expiry of a checkout past its time.
    clock = minutes(2) + minutes(4);
    await t.database.handle.db.execute(
      sql`update payments set expires_at = ${new Date(now() - 1000).toISOString()}::timestamptz where id = ${expiring.id}`,
    );
    await reconcile();
    await expire();
    expect(askedFor()).toEqual([first.orderId]);
    expect(await statusOf(expiring.id)).toBe("created");

    // The 5 minutes are over (the key lapses): the oldest waiting job is asked first.
    answers.set(first.orderId, transaction("22"));
    answers.set(second.orderId, transaction("22"));
    clock = minutes(2) + minutes(5) + 1_000;
    await nextSlot(0);
    await reconcile();
    expect(askedFor()).toEqual([first.orderId, first.orderId]);
    await nextSlot();
    await reconcile();
    expect(askedFor()).toEqual([first.orderId, first.orderId, second.orderId]);
  });

  it.each(["Q01", "Q00001", "Q02", "Q00002", "Q07", "Q04", "Q00003", "Q101", "Q201", "Q00004", "Q102", "Q202", "Q150", "Q204"])(
    "misconfiguration (%s): logged with the code, counted in fiuu_misconfiguration_total, asked again only after 30 minutes",
    async (code) => {
      const payment = await checkedOut();
      answers.set(payment.orderId, refusal(code, "Invalid Parameter Value"));
      const counted = await misconfigured(code);
      clock = minutes(2);
      await reconcile();
      expect(asked).toHaveLength(1);
      expect(await misconfigured(code)).toBe(counted + 1);
      expect(t.logs.lines.filter((l) => l.code === code && l.level === "error" && l.operation === "requery")).not.toHaveLength(0);
      const job = await jobOf(payment.id);
      expect(job).toMatchObject({ status: "pending", attempts: 1, lockedUntil: null });
      expect(job.runAt.getTime() - now()).toBeGreaterThanOrEqual(requerySchedule.slowRetryMs);
      expect(job.runAt.getTime() - now()).toBeLessThanOrEqual(requerySchedule.slowRetryMs + minutes(1));

      // Slot after slot for the next 25 minutes: never asked again in between.
      for (let i = 0; i < 5; i++) {
        await nextSlot(minutes(5));
        await reconcile();
      }
      expect(asked).toHaveLength(1);
      expect(await statusOf(payment.id)).toBe("created");
    },
  );

  it("an unlisted code is handled like a misconfiguration: logged, counted, asked again in 30 minutes", async () => {
    const payment = await checkedOut();
    answers.set(payment.orderId, refusal("Q42", "Something new"));
    clock = minutes(2);
    await reconcile();
    expect(await misconfigured("Q42")).toBe(1);
    expect((await jobOf(payment.id)).runAt.getTime() - now()).toBeGreaterThanOrEqual(requerySchedule.slowRetryMs);
  });

  it("a misconfigured payment never holds up the expiry of others", async () => {
    const stuck = await checkedOut();
    const unpaid = await checkedOut();
    const untouched = await createPayment(t);
    answers.set(stuck.orderId, refusal("Q202", "Incorrect skey"));
    answers.set(unpaid.orderId, refusal("Q203", "Transaction record not found"));
    clock = minutes(31);
    for (let i = 0; i < 3; i++) {
      await expire();
      await nextSlot();
    }
    expect(await statusOf(unpaid.id)).toBe("expired");
    expect(await statusOf(untouched.id)).toBe("expired");
    expect(await statusOf(stuck.id)).toBe("created");
    expect(askedFor().filter((o) => o === stuck.orderId)).toHaveLength(1);
    const job = await jobOf(stuck.id, "expire");
    expect(job).toMatchObject({ status: "pending", attempts: 1 });
    expect(job.runAt.getTime() - now()).toBeGreaterThan(minutes(25));
  });

  it("Q06 (query period expired): a pending payment is no longer asked about; an expiring checkout expires", async () => {
    const pending = await checkedOut();
    answers.set(pending.orderId, transaction("22"));
    clock = minutes(2);
    await reconcile();
    expect(await statusOf(pending.id)).toBe("pending");

    answers.set(pending.orderId, refusal("Q06", "Query period expired"));
    clock = minutes(4);
    await nextSlot(0);
    await reconcile();
    expect(asked).toHaveLength(2);
    expect((await jobOf(pending.id)).status).toBe("done");
    expect(await statusOf(pending.id)).toBe("pending");
    expect(await misconfigured("Q06")).toBe(0);

    const expiring = await checkedOut();
    answers.set(expiring.orderId, refusal("Q06", "Query period expired"));
    clock = minutes(40);
    await nextSlot(0);
    await expire();
    expect(await statusOf(expiring.id)).toBe("expired");
  });

  it.each([
    ["a forged VrfKey", transaction("00", { VrfKey: md5("forged") })],
    [
      "a 11 turned into 00 under its VrfKey",
      (form: Record<string, string>) => (transaction("11")(form) as string).replace("StatCode: 11", "StatCode: 00"),
    ],
    ["another merchant's answer", transaction("00", { Domain: "SB_someoneelse" })],
  ])("never believes %s: nothing changes, nothing is stored as applied, asked again in 30 minutes", async (_name, answer) => {
    const payment = await checkedOut();
    answers.set(payment.orderId, answer);
    clock = minutes(2);
    await reconcile();
    expect(await statusOf(payment.id)).toBe("created");
    expect(await rows(sql`select 1 from gateway_messages where payment_id = ${payment.id}`)).toEqual([]);
    expect((await jobOf(payment.id)).runAt.getTime() - now()).toBeGreaterThanOrEqual(requerySchedule.slowRetryMs);

    clock = minutes(31);
    await nextSlot(0);
    await expire();
    expect(await statusOf(payment.id)).toBe("created");
  });
});

describe("turns at the merchant's query slot", () => {
  it("serves waiting jobs oldest due first; a job waiting for the slot keeps its run_at and loses no attempt", async () => {
    const payments = [];
    for (let i = 0; i < 3; i++) {
      clock = i * 1_000;
      payments.push(await checkedOut());
    }
    for (const p of payments) answers.set(p.orderId, transaction("22"));
    const [a, b, c] = payments as [(typeof payments)[0], (typeof payments)[0], (typeof payments)[0]];
    const bDue = (await jobOf(b.id)).runAt;

    clock = minutes(5);
    await reconcile();
    expect(askedFor()).toEqual([a.orderId]);
    // b was claimed and found the slot taken: it waits for the slot, in its place.
    const waiting = await jobOf(b.id);
    expect(waiting).toMatchObject({ status: "pending", attempts: 0, runAt: bDue });
    expect(waiting.lockedUntil!.getTime()).toBeGreaterThan(now());
    expect(waiting.lockedUntil!.getTime()).toBeLessThanOrEqual(now() + 10_000);
    // c was not even claimed: a batch claims only two requeries.
    expect(await jobOf(c.id)).toMatchObject({ attempts: 0, lockedUntil: null });

    await nextSlot();
    await reconcile();
    await nextSlot();
    await reconcile();
    expect(askedFor()).toEqual([a.orderId, b.orderId, c.orderId]);
  });

  it("a result page brings its payment's requery forward once per 5 minutes, behind every payment due earlier", async () => {
    const payments = [];
    for (let i = 0; i < 3; i++) {
      clock = i * 1_000;
      payments.push(await checkedOut());
    }
    for (const p of payments) answers.set(p.orderId, transaction("22"));
    const [a, b, hot] = payments as [(typeof payments)[0], (typeof payments)[0], (typeof payments)[0]];
    clock = minutes(5);
    for (let i = 0; i < 3; i++) {
      await reconcile();
      await nextSlot();
    }
    expect(askedFor()).toEqual([a.orderId, b.orderId, hot.orderId]);

    // The shopper of `hot` keeps refreshing its result page (every 3 s, or far faster).
    clock = minutes(5.5);
    const refresh = async (times: number) => {
      for (let i = 0; i < times; i++) expect((await t.app.request(`/pay/${hot.id}/result`)).status).toBe(200);
    };
    await refresh(20);
    expect((await jobOf(hot.id)).runAt.getTime()).toBe(now());
    const guard = await t.deps.redis.pttl(resultPageRequeryKey(hot.id));
    expect(guard).toBeGreaterThan(minutes(5) - 5_000);
    await reconcile();
    expect(askedFor()).toEqual([a.orderId, b.orderId, hot.orderId, hot.orderId]);

    // Within the 5 minutes more refreshing brings nothing forward: its next turn stays on schedule.
    await nextSlot();
    await refresh(20);
    const scheduled = (await jobOf(hot.id)).runAt.getTime();
    expect(scheduled).toBeGreaterThan(now());
    await reconcile();
    expect(asked).toHaveLength(4);

    // Everyone is due: those due earlier go first, however much the page is refreshed.
    clock = scheduled - base + 1_000;
    for (const expected of [a, b, hot]) {
      await nextSlot();
      await refresh(5);
      await reconcile();
      expect(asked.at(-1)!.oID).toBe(expected.orderId);
    }
  });

  it("a result page brings nothing forward while Redis is down, and still answers", async () => {
    const payment = await checkedOut();
    const due = (await jobOf(payment.id)).runAt;
    const redis = t.deps.redis as unknown as { set: (...args: unknown[]) => Promise<unknown> };
    const set = redis.set;
    redis.set = () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:6379"));
    try {
      const page = await t.app.request(`/pay/${payment.id}/result`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('data-testid="payment-status">created<');
    } finally {
      redis.set = set;
    }
    expect((await jobOf(payment.id)).runAt).toEqual(due);
  });
});
