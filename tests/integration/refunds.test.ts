import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../lib/adapters/db/client.js";
import { bearer, createTestApp, jsonRequest, newKey, type TestContext } from "../support/app.js";
import { createPayment, payThroughSandbox } from "../support/flow.js";
import { formPost } from "../support/fiuu.js";

// Refunds against the local sandbox mounted on the app: Fiuu's refund API, its refund notice to
// /webhooks/fiuu/refund, and its status query, with real signatures both ways.

let t: TestContext;
let clock = 0;
let intercept: ((request: Request) => Promise<Response | undefined>) | undefined;
beforeAll(async () => {
  t = await createTestApp({
    now: () => new Date(Date.now() + clock),
    fiuuFetch: async (request) => (await intercept?.(request)) ?? t.app.fetch(request),
  });
});
afterAll(() => t.close());

const rows = <T>(query: ReturnType<typeof sql>) => queryRows<T>(t.database.handle.db, query);

async function paidPayment(amount = 1050) {
  const payment = await createPayment(t, { amount });
  await payThroughSandbox(t, payment.checkout_url, "approve");
  return payment;
}

async function refund(paymentId: string, body: Record<string, unknown> = {}, key = newKey()) {
  const res = await t.app.request(`/v1/payments/${paymentId}/refunds`, jsonRequest("POST", body, { ...(await bearer(t)), "Idempotency-Key": key }));
  return { res, body: (await res.json()) as Record<string, any> };
}

const paymentMoney = async (id: string) =>
  (
    await rows<{ amount_refunded: string; amount_refund_reserved: string }>(
      sql`select amount_refunded, amount_refund_reserved from payments where id = ${id}`,
    )
  ).map((r) => ({
    refunded: Number(r.amount_refunded),
    reserved: Number(r.amount_refund_reserved),
  }))[0]!;
const eventsOf = async (id: string) =>
  (await rows<{ type: string }>(sql`select type from events where payment_id = ${id} order by id`)).map((e) => e.type);
const settleAtFiuu = (refId: string, status: "00" | "11") =>
  t.app.request(`/sandbox/fiuu/_control/refunds/${refId}`, jsonRequest("POST", { status }));

describe("POST /v1/payments/:id/refunds", () => {
  it("refunds the whole rest by default, pending until Fiuu's notice says it succeeded", async () => {
    const payment = await paidPayment();
    const { res, body } = await refund(payment.id, { reason: "customer changed mind" });
    expect(res.status).toBe(201);
    expect(body).toMatchObject({
      object: "refund",
      payment_id: payment.id,
      amount: 1050,
      currency: "MYR",
      status: "pending",
      reason: "customer changed mind",
    });
    expect(body.id).toMatch(/^re_/);
    expect(body.gateway.refund_id).toBeTruthy();
    expect(await paymentMoney(payment.id)).toEqual({ refunded: 0, reserved: 1050 });

    expect((await settleAtFiuu(body.gateway.ref_id, "00")).status).toBe(200);
    const after = (await (await t.app.request(`/v1/refunds/${body.id}`, { headers: await bearer(t) })).json()) as Record<string, unknown>;
    expect(after.status).toBe("succeeded");
    expect(await paymentMoney(payment.id)).toEqual({ refunded: 1050, reserved: 1050 });
    expect(await eventsOf(payment.id)).toEqual(["payment.succeeded", "refund.pending", "refund.succeeded"]);
    const shown = (await (await t.app.request(`/v1/payments/${payment.id}`, { headers: await bearer(t) })).json()) as {
      amount_refunded: number;
      status: string;
    };
    expect(shown).toMatchObject({ amount_refunded: 1050, status: "succeeded" });
  });

  it("takes partial refunds up to the payment and refuses one cent more", async () => {
    const payment = await paidPayment();
    expect((await refund(payment.id, { amount: 300 })).res.status).toBe(201);
    expect((await refund(payment.id, { amount: 750 })).res.status).toBe(201);
    const over = await refund(payment.id, { amount: 1 });
    expect(over.res.status).toBe(422);
    expect(over.body).toMatchObject({ code: "amount_exceeds_refundable", refundable: 0 });
    const list = (await (await t.app.request(`/v1/payments/${payment.id}/refunds`, { headers: await bearer(t, "admin") })).json()) as {
      data: { amount: number }[];
    };
    expect(list.data.map((r) => r.amount)).toEqual([300, 750]);
  });

  it("never exceeds the payment with six refunds at once", async () => {
    const payment = await paidPayment(1050);
    const answers = await Promise.all(Array.from({ length: 6 }, () => refund(payment.id, { amount: 300 })));
    const created = answers.filter((a) => a.res.status === 201);
    expect(created).toHaveLength(3);
    expect(answers.filter((a) => a.res.status === 422)).toHaveLength(3);
    const [{ total }] = (await rows<{ total: string }>(
      sql`select coalesce(sum(amount), 0) as total from refunds where payment_id = ${payment.id} and status <> 'failed'`,
    )) as [{ total: string }];
    expect(Number(total)).toBe(900);
    expect((await paymentMoney(payment.id)).reserved).toBe(900);
  });

  it("refuses to refund a payment that was not paid", async () => {
    const payment = await createPayment(t);
    const { res, body } = await refund(payment.id);
    expect(res.status).toBe(409);
    expect(body.code).toBe("invalid_state");
  });

  it("replays a refund for a repeated Idempotency-Key instead of refunding twice", async () => {
    const payment = await paidPayment();
    const key = newKey();
    const first = await refund(payment.id, { amount: 100 }, key);
    const again = await refund(payment.id, { amount: 100 }, key);
    expect(again.res.headers.get("idempotency-replayed")).toBe("true");
    expect(again.body.id).toBe(first.body.id);
    expect((await paymentMoney(payment.id)).reserved).toBe(100);
  });

  it("records Fiuu's PRxxx refusal as a failed refund and gives the amount back", async () => {
    const payment = await paidPayment();
    intercept = async (request) =>
      request.url.includes("refundAPI/index.php")
        ? Response.json({ error_code: "PR005", error_desc: "Only a successful transaction can be refunded" })
        : undefined;
    try {
      const { res, body } = await refund(payment.id, { amount: 500 });
      expect(res.status).toBe(201);
      expect(body).toMatchObject({ status: "failed", failure: { code: "PR005", message: "Only a successful transaction can be refunded" } });
    } finally {
      intercept = undefined;
    }
    expect(await paymentMoney(payment.id)).toEqual({ refunded: 0, reserved: 0 });
    expect(await eventsOf(payment.id)).toEqual(["payment.succeeded", "refund.pending", "refund.failed"]);
    expect((await refund(payment.id)).body.amount).toBe(1050);
  });

  it("keeps a refund pending when Fiuu's answer has a bad signature, and the poll job settles it", async () => {
    const payment = await paidPayment();
    intercept = async (request) => {
      if (!request.url.includes("refundAPI/index.php")) return undefined;
      const real = (await (await t.app.fetch(request)).json()) as Record<string, string>;
      return Response.json({ ...real, Signature: "0".repeat(32) });
    };
    let created: Awaited<ReturnType<typeof refund>>["body"];
    try {
      created = (await refund(payment.id, { amount: 200 })).body;
    } finally {
      intercept = undefined;
    }
    expect(created.status).toBe("pending");
    expect(created.gateway.refund_id).toBeNull();
    // The poll finds Fiuu has the refund (the request did reach it) and follows it to its end.
    await settleAtFiuu(created.gateway.ref_id, "00");
    clock = 2 * 60_000;
    try {
      const ran = await t.app.request("/jobs/reconcile", { method: "POST", headers: await bearer(t, "system") });
      expect(ran.status).toBe(200);
    } finally {
      clock = 0;
    }
    const after = (await (await t.app.request(`/v1/refunds/${created.id}`, { headers: await bearer(t) })).json()) as { status: string };
    expect(after.status).toBe("succeeded");
  });

  it("sends a refund again under the same RefID when the first request never reached Fiuu", async () => {
    const payment = await paidPayment();
    intercept = async (request) => (request.url.includes("refundAPI") ? Promise.reject(new TypeError("fetch failed")) : undefined);
    let created: Awaited<ReturnType<typeof refund>>["body"];
    try {
      created = (await refund(payment.id, { amount: 400 })).body;
    } finally {
      intercept = undefined;
    }
    expect(created.status).toBe("pending");
    clock = 2 * 60_000;
    try {
      await t.app.request("/jobs/reconcile", { method: "POST", headers: await bearer(t, "system") });
    } finally {
      clock = 0;
    }
    const [row] = await rows<{ fiuu_refund_id: string | null; status: string }>(
      sql`select fiuu_refund_id, status from refunds where id = ${created.id}`,
    );
    expect(row!.fiuu_refund_id).toBeTruthy();
    await settleAtFiuu(created.gateway.ref_id, "11");
    const after = (await (await t.app.request(`/v1/refunds/${created.id}`, { headers: await bearer(t) })).json()) as { status: string };
    expect(after.status).toBe("failed");
    expect(await paymentMoney(payment.id)).toEqual({ refunded: 0, reserved: 0 });
  });

  it("refuses a refund notice whose Signature does not verify", async () => {
    const payment = await paidPayment();
    const created = (await refund(payment.id, { amount: 100 })).body;
    const forged = {
      RefundType: "P",
      MerchantID: t.deps.config.fiuu.merchantId!,
      RefID: created.gateway.ref_id,
      RefundID: "1",
      TxnID: "1",
      Amount: "1.00",
      Status: "00",
      Signature: "f".repeat(32),
    };
    const res = await t.app.request("/webhooks/fiuu/refund", formPost(forged));
    expect(res.status).toBe(400);
    const after = (await (await t.app.request(`/v1/refunds/${created.id}`, { headers: await bearer(t) })).json()) as { status: string };
    expect(after.status).toBe("pending");
  });

  it.each([
    ["a system token", "system", 403],
    ["no token", undefined, 401],
  ])("refuses %s", async (_name, role, status) => {
    const payment = await paidPayment();
    const headers = role ? await bearer(t, role as "system") : {};
    const res = await t.app.request(`/v1/payments/${payment.id}/refunds`, jsonRequest("POST", {}, { ...headers, "Idempotency-Key": newKey() }));
    expect(res.status).toBe(status);
  });
});
