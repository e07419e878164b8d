import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { queryRows } from "../../lib/adapters/db/client.js";
import { bearer, createTestApp, jsonRequest, newKey, type TestContext } from "../support/app.js";
import { createPayment, payThroughSandbox } from "../support/flow.js";

// Refunds as Fiuu really answers them (FIUU.md §4), through the local sandbox mounted on the app:
// a RefID is sent once; an unknown outcome is resolved by asking q_by_refID, and only INQ006 lets
// the request be sent again; every PRxxx code does what FIUU.md's table says. Requests the service
// sends to Fiuu are recorded on their way out, so each test can check what Fiuu was asked.

interface SentToFiuu {
  path: string;
  form: Record<string, string>;
  headers: Record<string, string>;
}

let t: TestContext;
let clock = 0;
const sent: SentToFiuu[] = [];
/** Answers a request to Fiuu instead of the sandbox (or, returning undefined, lets the sandbox answer). */
let intercept: ((request: Request) => Promise<Response | undefined>) | undefined;
beforeAll(async () => {
  t = await createTestApp({
    now: () => new Date(Date.now() + clock),
    fiuuFetch: async (request) => {
      const url = new URL(request.url);
      if (url.pathname.includes("refundAPI")) {
        sent.push({
          path: url.pathname.replace(/^.*\/RMS/, "/RMS"),
          form: Object.fromEntries(new URLSearchParams(await request.clone().text())),
          headers: Object.fromEntries(request.headers),
        });
      }
      return (await intercept?.(request)) ?? t.app.fetch(request);
    },
  });
});
afterAll(() => t.close());
beforeEach(() => {
  sent.length = 0;
  intercept = undefined;
});

const rows = <T>(query: ReturnType<typeof sql>) => queryRows<T>(t.database.handle.db, query);
/** What Fiuu was sent about one refund (other tests' refunds are polled too). */
const refundPosts = (refId?: string) =>
  sent.filter((s) => s.path.endsWith("/refundAPI/index.php") && (refId === undefined || s.form.RefID === refId));
const statusQueries = (refId: string) => sent.filter((s) => s.path.endsWith("/q_by_refID.php") && s.form.RefID === refId);

async function paidPayment(options: { amount?: number; channel?: string } = {}) {
  const payment = await createPayment(t, { amount: options.amount ?? 1050, ...(options.channel ? { channel: options.channel } : {}) });
  await payThroughSandbox(t, payment.checkout_url, "approve");
  return payment;
}

async function refund(paymentId: string, body: Record<string, unknown> = {}) {
  const res = await t.app.request(
    `/v1/payments/${paymentId}/refunds`,
    jsonRequest("POST", body, { ...(await bearer(t)), "Idempotency-Key": newKey() }),
  );
  return { res, body: (await res.json()) as Record<string, any> };
}

const refundRow = async (id: string) =>
  (
    await rows<{
      status: string;
      failure_code: string | null;
      failure_message: string | null;
      fiuu_refund_id: string | null;
      beneficiary: string | null;
    }>(sql`select status, failure_code, failure_message, fiuu_refund_id, beneficiary from refunds where id = ${id}`)
  )[0]!;
const paymentMoney = async (id: string) =>
  (
    await rows<{ amount_refunded: string; amount_refund_reserved: string }>(
      sql`select amount_refunded, amount_refund_reserved from payments where id = ${id}`,
    )
  ).map((r) => ({
    refunded: Number(r.amount_refunded),
    reserved: Number(r.amount_refund_reserved),
  }))[0]!;

/** Runs the reconcile batch (requeries, IPN echoes, refund polls) as a scheduler would, `minutes` later. */
async function pollLater(minutes: number) {
  clock += minutes * 60_000;
  const res = await t.app.request("/jobs/reconcile", { method: "POST", headers: await bearer(t, "system") });
  expect(res.status).toBe(200);
}

const settleAtFiuu = (refId: string, status: "00" | "11") =>
  t.app.request(`/sandbox/fiuu/_control/refunds/${refId}`, jsonRequest("POST", { status }));
const fiuuError = (code: string, desc: string) => Response.json({ error_code: code, error_desc: desc });
const onRefundPost = (answer: (request: Request) => Promise<Response | undefined>) => {
  intercept = async (request) => (new URL(request.url).pathname.endsWith("/refundAPI/index.php") ? answer(request) : undefined);
};
/** Lets Fiuu process the request, then loses its answer (a 504 on the way back). */
const processThenLose = async (request: Request) => {
  await t.app.fetch(request);
  return new Response("Gateway Timeout", { status: 504 });
};

const beneficiary = { bank_code: "MBB0228", name: "Tan Mei Ling", account_number: "512345678901" };

describe("a RefID is sent once, and an unknown outcome is asked about, never guessed", () => {
  it("sends the refund POST once with idempotency-key set to the RefID, even when Fiuu answers 503", async () => {
    const payment = await paidPayment();
    onRefundPost(async () => new Response("Service Unavailable", { status: 503 }));
    const { res, body } = await refund(payment.id, { amount: 300 });
    expect(res.status).toBe(201);
    expect(body.status).toBe("pending");
    expect(refundPosts(body.gateway.ref_id)).toHaveLength(1);
    expect(refundPosts(body.gateway.ref_id)[0]!.headers["idempotency-key"]).toBe(body.gateway.ref_id);
    expect(await paymentMoney(payment.id)).toEqual({ refunded: 0, reserved: 300 });
  });

  it("ends succeeded, never failed, when Fiuu processed the refund but its answer was lost; the amount is never refundable twice", async () => {
    const payment = await paidPayment();
    onRefundPost(processThenLose);
    const created = (await refund(payment.id)).body;
    expect(created.status).toBe("pending");
    intercept = undefined;
    // Nothing more can be refunded while Fiuu may still pay this one.
    expect((await refund(payment.id, { amount: 1 })).res.status).toBe(422);
    await pollLater(2);
    // The poll asked first and found the refund: it did not send it again.
    expect(statusQueries(created.gateway.ref_id)).toHaveLength(1);
    expect(refundPosts(created.gateway.ref_id)).toHaveLength(1);
    expect((await refundRow(created.id)).status).toBe("pending");
    expect((await settleAtFiuu(created.gateway.ref_id, "00")).status).toBe(200);
    expect((await refundRow(created.id)).status).toBe("succeeded");
    expect(await paymentMoney(payment.id)).toEqual({ refunded: 1050, reserved: 1050 });
    expect((await refund(payment.id, { amount: 1 })).res.status).toBe(422);
  });

  it("sends a refund Fiuu never received again after q_by_refID answers INQ006, and it succeeds", async () => {
    const payment = await paidPayment();
    onRefundPost(async () => new Response("Gateway Timeout", { status: 504 })); // dropped before Fiuu
    const created = (await refund(payment.id, { amount: 400 })).body;
    expect(created.status).toBe("pending");
    intercept = undefined;
    await pollLater(2);
    expect(statusQueries(created.gateway.ref_id)).toHaveLength(1);
    expect(refundPosts(created.gateway.ref_id)).toHaveLength(2);
    const row = await refundRow(created.id);
    expect(row.status).toBe("pending");
    expect(row.fiuu_refund_id).toBeTruthy();
    await settleAtFiuu(created.gateway.ref_id, "00");
    expect((await refundRow(created.id)).status).toBe("succeeded");
    expect(await paymentMoney(payment.id)).toEqual({ refunded: 400, reserved: 400 });
  });

  it("keeps the refund pending and looks it up when Fiuu answers PR016 (duplicate RefID)", async () => {
    const payment = await paidPayment();
    // Fiuu has the refund (processed), but answers this request as a duplicate RefID.
    onRefundPost(async (request) => {
      await t.app.fetch(request);
      return fiuuError("PR016", "Duplicate RefID found, please provide a unique RefID");
    });
    const created = (await refund(payment.id, { amount: 500 })).body;
    expect(created).toMatchObject({ status: "pending", failure: null });
    intercept = undefined;
    await pollLater(2);
    expect(refundPosts(created.gateway.ref_id)).toHaveLength(1);
    await settleAtFiuu(created.gateway.ref_id, "00");
    expect((await refundRow(created.id)).status).toBe("succeeded");
  });

  it("keeps a refund pending while Fiuu cannot be asked, however many polls fail", async () => {
    const payment = await paidPayment();
    intercept = async () => new Response("Bad Gateway", { status: 502 });
    const created = (await refund(payment.id, { amount: 100 })).body;
    for (let i = 0; i < 4; i++) await pollLater(60);
    expect((await refundRow(created.id)).status).toBe("pending");
    expect(refundPosts(created.gateway.ref_id)).toHaveLength(1);
    expect(await paymentMoney(payment.id)).toEqual({ refunded: 0, reserved: 100 });
    // Let the circuit breaker (opened by these failures) half-open again for the next tests.
    intercept = undefined;
    await new Promise((resolve) => setTimeout(resolve, 150));
  });
});

describe("every PRxxx answer as FIUU.md's table says", () => {
  it.each([
    ["PR009", "TxnID not found"],
    ["PR011", "Refund amount exceeds refundable amount"],
    ["PR013", "BankCode not found"],
    ["PR017", "Out of refund period"],
    ["PR019", "Full/partial refund is not allowed"],
  ])("%s fails the refund with Fiuu's code and text and gives the amount back", async (code, desc) => {
    const payment = await paidPayment();
    onRefundPost(async () => fiuuError(code, desc));
    const { res, body } = await refund(payment.id, { amount: 250 });
    expect(res.status).toBe(201);
    expect(body).toMatchObject({ status: "failed", failure: { code, message: desc } });
    expect(await paymentMoney(payment.id)).toEqual({ refunded: 0, reserved: 0 });
  });

  it.each(["PR001", "PR004", "PR007", "PR008"])(
    "%s (a bug or misconfiguration) fails the refund and counts fiuu_misconfiguration_total",
    async (code) => {
      const payment = await paidPayment();
      onRefundPost(async () => fiuuError(code, "misconfigured"));
      const { body } = await refund(payment.id, { amount: 100 });
      expect(body).toMatchObject({ status: "failed", failure: { code } });
      const metric = await t.deps.metrics.registry.getSingleMetricAsString("fiuu_misconfiguration_total");
      expect(metric).toMatch(new RegExp(`fiuu_misconfiguration_total\\{operation="refund",code="${code}"\\} [1-9]`));
    },
  );

  it.each(["PR015", "PR020"])("%s keeps the refund pending and sends it again later, after asking", async (code) => {
    const payment = await paidPayment();
    onRefundPost(async () => fiuuError(code, "try again later"));
    const created = (await refund(payment.id, { amount: 200 })).body;
    expect(created.status).toBe("pending");
    intercept = undefined;
    await pollLater(2);
    expect(statusQueries(created.gateway.ref_id)).toHaveLength(1);
    expect(refundPosts(created.gateway.ref_id)).toHaveLength(2);
    const row = await refundRow(created.id);
    expect(row).toMatchObject({ status: "pending", failure_code: null });
    expect(row.fiuu_refund_id).toBeTruthy();
  });

  it("PR010 keeps the refund pending when the payment went through pending, and fails it otherwise", async () => {
    const viaPending = await createPayment(t);
    const { tranID } = await payThroughSandbox(t, viaPending.checkout_url, "pending");
    expect((await t.app.request(`/sandbox/fiuu/_control/transactions/${tranID}`, jsonRequest("POST", { status: "00" }))).status).toBe(200);
    const direct = await paidPayment();
    onRefundPost(async () => fiuuError("PR010", "Transaction is not authorized/captured/settled"));
    expect((await refund(viaPending.id, { amount: 100 })).body.status).toBe("pending");
    expect((await refund(direct.id, { amount: 100 })).body).toMatchObject({ status: "failed", failure: { code: "PR010" } });
  });
});

describe("non-card refunds carry the beneficiary (PR014)", () => {
  it("answers 422 beneficiary_required for an FPX payment without one, naming the fields, before asking Fiuu", async () => {
    const payment = await paidPayment({ channel: "FPX_MB2U" });
    const { res, body } = await refund(payment.id, { amount: 100 });
    expect(res.status).toBe(422);
    expect(body.code).toBe("beneficiary_required");
    expect(body.errors.map((e: { field: string }) => e.field)).toEqual(["beneficiary.bank_code", "beneficiary.name", "beneficiary.account_number"]);
    expect(refundPosts()).toHaveLength(0);
    expect(await paymentMoney(payment.id)).toEqual({ refunded: 0, reserved: 0 });
  });

  it("refuses a beneficiary for a card payment (Fiuu's PR012) with 422", async () => {
    const payment = await paidPayment();
    const { res, body } = await refund(payment.id, { amount: 100, beneficiary });
    expect(res.status).toBe(422);
    expect(body.code).toBe("beneficiary_not_applicable");
    expect(refundPosts()).toHaveLength(0);
  });

  it("refuses a beneficiary name Fiuu would refuse (PR018) with 400, changing nothing", async () => {
    const payment = await paidPayment({ channel: "FPX_MB2U" });
    const { res, body } = await refund(payment.id, { amount: 100, beneficiary: { ...beneficiary, name: "Tan, Mei-Ling" } });
    expect(res.status).toBe(400);
    expect(body.code).toBe("invalid_request");
    expect(await paymentMoney(payment.id)).toEqual({ refunded: 0, reserved: 0 });
  });

  it("sends it as BankCode, BankCountry, BeneficiaryName, BeneficiaryAccNo; stores it encrypted; shows the last 4 digits only", async () => {
    const payment = await paidPayment({ channel: "FPX_MB2U" });
    const { res, body } = await refund(payment.id, { amount: 100, beneficiary });
    expect(res.status).toBe(201);
    expect(body.status).toBe("pending");
    expect(refundPosts(body.gateway.ref_id)[0]!.form).toMatchObject({
      BankCode: "MBB0228",
      BankCountry: "MY",
      BeneficiaryName: "Tan Mei Ling",
      BeneficiaryAccNo: "512345678901",
    });
    expect(body.beneficiary).toEqual({ bank_code: "MBB0228", country: "MY", account_number: "****8901" });
    const row = await refundRow(body.id);
    expect(row.beneficiary).toBeTruthy();
    const everything = JSON.stringify(await rows(sql`select * from refunds where id = ${body.id}`));
    expect(everything).not.toContain("512345678901");
    expect(everything).not.toContain("Tan Mei Ling");
    const events = JSON.stringify(await rows(sql`select data from events where refund_id = ${body.id}`));
    expect(events).toContain("****8901");
    expect(events).not.toContain("512345678901");
    const shown = JSON.stringify(await (await t.app.request(`/v1/refunds/${body.id}`, { headers: await bearer(t) })).json());
    expect(shown).not.toContain("512345678901");
    expect(t.logs.raw.join("\n")).not.toContain("512345678901");
  });

  it("sends the stored beneficiary again when a lost request is resent", async () => {
    const payment = await paidPayment({ channel: "FPX_MB2U" });
    onRefundPost(async () => new Response("Gateway Timeout", { status: 504 }));
    const created = (await refund(payment.id, { amount: 100, beneficiary })).body;
    intercept = undefined;
    await pollLater(2);
    expect(refundPosts(created.gateway.ref_id)).toHaveLength(2);
    expect(refundPosts(created.gateway.ref_id)[1]!.form).toMatchObject({ BankCode: "MBB0228", BeneficiaryAccNo: "512345678901" });
    expect((await refundRow(created.id)).fiuu_refund_id).toBeTruthy();
  });
});

describe("the refund notice", () => {
  async function pendingRefund() {
    const payment = await paidPayment();
    return (await refund(payment.id, { amount: 100 })).body;
  }
  const md5 = async (text: string) => (await import("node:crypto")).createHash("md5").update(text).digest("hex");
  async function notice(created: Record<string, any>, status: string, signedStatus: string) {
    const [row] = await rows<{ tran_id: string }>(
      sql`select p.tran_id from payments p join refunds r on r.payment_id = p.id where r.id = ${created.id}`,
    );
    const f = {
      RefundType: "P",
      MerchantID: t.deps.config.fiuu.merchantId!,
      RefID: created.gateway.ref_id,
      RefundID: created.gateway.refund_id ?? "77",
      TxnID: row!.tran_id,
      Amount: "1.00",
    };
    const Signature = await md5(
      f.RefundType + f.MerchantID + f.RefID + f.RefundID + f.TxnID + f.Amount + signedStatus + t.deps.config.fiuu.secretKey!,
    );
    return { ...f, Status: status, Signature };
  }

  it("accepts JSON with a word status signed over its code, numbers as JSON numbers", async () => {
    const created = await pendingRefund();
    const fields = await notice(created, "success", "00");
    const body = JSON.stringify({ ...fields, RefundID: "__id__", TxnID: "__txn__" })
      .replace('"__id__"', fields.RefundID)
      .replace('"__txn__"', fields.TxnID);
    const res = await t.app.request("/webhooks/fiuu/refund", { method: "POST", body, headers: { "content-type": "application/json" } });
    expect(res.status).toBe(200);
    expect((await refundRow(created.id)).status).toBe("succeeded");
  });

  it("accepts form data with a code status, and refuses one signed over another status", async () => {
    const created = await pendingRefund();
    const forged = await notice(created, "00", "11");
    expect(
      (
        await t.app.request("/webhooks/fiuu/refund", {
          method: "POST",
          body: new URLSearchParams(forged),
          headers: { "content-type": "application/x-www-form-urlencoded" },
        })
      ).status,
    ).toBe(400);
    expect((await refundRow(created.id)).status).toBe("pending");
    const genuine = await notice(created, "11", "11");
    expect(
      (
        await t.app.request("/webhooks/fiuu/refund", {
          method: "POST",
          body: new URLSearchParams(genuine),
          headers: { "content-type": "application/x-www-form-urlencoded" },
        })
      ).status,
    ).toBe(200);
    expect((await refundRow(created.id)).status).toBe("failed");
  });

  it("refuses an unsigned notice whose fields would be cut inside a surrogate pair with 400, never 500", async () => {
    const res = await t.app.request("/webhooks/fiuu/refund", {
      method: "POST",
      body: new URLSearchParams({ RefundType: " \u{10000}\u{10000}", Signature: "" }),
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(res.status).toBe(400);
  });

  it("never creates a refund: a signed notice for an unknown RefID is stored as an orphan", async () => {
    const created = await pendingRefund();
    const fields = await notice({ ...created, gateway: { ...created.gateway, ref_id: "reUNKNOWN1" } }, "00", "00");
    expect((await t.app.request("/webhooks/fiuu/refund", jsonRequest("POST", fields))).status).toBe(200);
    expect(await rows(sql`select 1 from refunds where ref_id = 'reUNKNOWN1'`)).toHaveLength(0);
    expect(
      await rows(sql`select 1 from gateway_messages where kind = 'refund_notice' and outcome = 'orphan' and fields->>'RefID' = 'reUNKNOWN1'`),
    ).toHaveLength(1);
  });
});
