import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../lib/adapters/db/client.js";
import { bearer, createTestApp, jsonRequest, newKey, type TestContext } from "../support/app.js";

let t: TestContext;
let service: Record<string, string>;
beforeAll(async () => {
  t = await createTestApp();
  service = await bearer(t, "service");
});
afterAll(() => t.close());

const md5 = (s: string) => createHash("md5").update(s).digest("hex");
let orderCounter = 0;
const newOrder = () => `ORD-${Date.now()}-${++orderCounter}`;

function paymentBody(overrides: Record<string, unknown> = {}) {
  return {
    order_id: newOrder(),
    amount: 1050,
    currency: "MYR",
    description: "2 x Kopi O",
    customer: { name: "Siti Aminah", email: "siti.aminah@example.my", mobile: "+60 17-482 3915" },
    ...overrides,
  };
}

async function create(body = paymentBody(), key = newKey(), headers = service) {
  const res = await t.app.request("/v1/payments", jsonRequest("POST", body, { ...headers, "Idempotency-Key": key }));
  return { res, body: (await res.json()) as Record<string, any> };
}

const rows = <T>(query: ReturnType<typeof sql>) => queryRows<T>(t.database.handle.db, query);
const countPayments = async () => (await rows<{ n: number }>(sql`select count(*)::int as n from payments`))[0]!.n;

describe("POST /v1/payments", () => {
  it("creates a payment with a client secret and a checkout URL", async () => {
    const body = paymentBody({ metadata: { cart: "c-1" }, return_url: "https://shop.example/thanks" });
    const before = Date.now();
    const { res, body: payment } = await create(body);
    expect(res.status).toBe(201);
    expect(payment).toMatchObject({
      object: "payment",
      order_id: body.order_id,
      amount: 1050,
      currency: "MYR",
      status: "created",
      customer: body.customer,
      metadata: { cart: "c-1" },
      return_url: "https://shop.example/thanks",
      amount_refunded: 0,
    });
    expect(payment.id).toMatch(/^pay_[0-9a-z]{26}$/);
    expect(payment.gateway.order_id).toMatch(/^[A-Za-z0-9]{1,40}$/);
    expect(payment.client_secret).toMatch(new RegExp(`^${payment.id}_secret_`));
    expect(payment.checkout_url).toBe(`http://payments.test/pay/${payment.id}?client_secret=${payment.client_secret}`);
    const ttl = Date.parse(payment.expires_at) - before;
    expect(ttl).toBeGreaterThan(29 * 60_000);
    expect(ttl).toBeLessThanOrEqual(30 * 60_000 + 5_000);
  });

  it("stores customer details only as ciphertext and the client secret only as a hash", async () => {
    const { body: payment } = await create();
    const [row] = await rows<Record<string, string>>(sql`select * from payments where id = ${payment.id}`);
    const stored = JSON.stringify(row);
    for (const clear of ["siti.aminah@example.my", "Siti Aminah", "482 3915", payment.client_secret]) expect(stored).not.toContain(clear);
    expect(row!.customer_email).toMatch(/^v1\.[0-9a-f]{8}\./);
    expect(row!.client_secret_hash).toBe(createHash("sha256").update(payment.client_secret).digest("hex"));
  });

  it("writes an audit row for the create in the same transaction", async () => {
    const { body: payment } = await create();
    const audit = await rows<{ actor: string; action: string; request_id: string }>(
      sql`select actor, action, request_id from audit_log where entity_id = ${payment.id}`,
    );
    expect(audit).toEqual([{ actor: "service:shop-1", action: "payment.created", request_id: expect.any(String) }]);
  });

  it.each([
    ["amount as a decimal", { amount: 10.5 }, "amount"],
    ["a zero amount", { amount: 0 }, "amount"],
    ["a negative amount", { amount: -100 }, "amount"],
    ["an absurd amount", { amount: 1e15 }, "amount"],
    ["the amount as a string", { amount: "1050" }, "amount"],
    ["an unsupported currency", { currency: "XYZ" }, "currency"],
    ["a lower-case currency", { currency: "myr" }, "currency"],
    ["a bad email", { customer: { name: "A", email: "not-an-email" } }, "customer.email"],
    ["no customer name", { customer: { name: " ", email: "a@example.my" } }, "customer.name"],
    ["an empty order id", { order_id: "" }, "order_id"],
    ["a 65-character order id", { order_id: "x".repeat(65) }, "order_id"],
    ["a control character in the order id", { order_id: "A\u0000B" }, "order_id"],
    ["a 256-character description", { description: "d".repeat(256) }, "description"],
    ["21 metadata keys", { metadata: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, "v"])) }, "metadata"],
    ["a javascript: return URL", { return_url: "javascript:alert(1)" }, "return_url"],
    ["an unknown field", { amount_override: 1 }, "(json)"],
  ])("refuses %s with 400 invalid_request and stores nothing", async (_name, overrides, field) => {
    const before = await countPayments();
    const { res, body } = await create(paymentBody(overrides));
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(body.code).toBe("invalid_request");
    expect(body.errors.map((e: { field: string }) => e.field)).toContain(field);
    expect(await countPayments()).toBe(before);
  });

  it("refuses malformed JSON with 400 invalid_request", async () => {
    const res = await t.app.request("/v1/payments", {
      method: "POST",
      body: '{"order_id": "x",',
      headers: { ...service, "Idempotency-Key": newKey(), "content-type": "application/json" },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_request");
  });

  it("refuses a channel the catalogue does not allow for the amount", async () => {
    const { res, body } = await create(paymentBody({ channel: "FPX_M2E", amount: 150 }));
    expect(res.status).toBe(400);
    expect(body.errors).toEqual([{ field: "channel", message: expect.stringContaining("at least 200") }]);
    const unknown = await create(paymentBody({ channel: "NOPE" }));
    expect(unknown.res.status).toBe(400);
  });

  it("refuses the invented code FPX_B2B_MB2U and takes Maybank2E as FPX_M2E", async () => {
    const invented = await create(paymentBody({ channel: "FPX_B2B_MB2U", amount: 5000 }));
    expect(invented.res.status).toBe(400);
    expect(invented.body.errors).toEqual([{ field: "channel", message: "Channel FPX_B2B_MB2U is not available." }]);
    const m2e = await create(paymentBody({ channel: "FPX_M2E", amount: 200 }));
    expect(m2e.res.status).toBe(201);
    expect(m2e.body.channel).toBe("FPX_M2E");
  });

  // Fiuu's "> 1.00" and Atome's "above RM 10.00": the boundary itself is refused, one sen more is taken.
  it.each([
    ["fpx", 100, 101],
    ["FPX_MB2U", 100, 101],
    ["FPX_OCBC", 100, 101],
    ["TNG-EWALLET", 100, 101],
    ["cash", 100, 101],
    ["Atome", 1000, 1001],
  ])("refuses %s at %i sen and takes it at %i sen", async (channel, refused, accepted) => {
    const before = await countPayments();
    const low = await create(paymentBody({ channel, amount: refused }));
    expect(low.res.status).toBe(400);
    expect(low.body.errors).toEqual([{ field: "channel", message: `Channel ${channel} needs at least ${accepted} minor units.` }]);
    expect(await countPayments()).toBe(before);
    const ok = await create(paymentBody({ channel, amount: accepted }));
    expect(ok.res.status).toBe(201);
    expect(ok.body).toMatchObject({ channel, amount: accepted });
  });

  it.each([
    ["fpx", 3_000_001],
    ["TNG-EWALLET", 500_001],
    ["cash", 150_001],
    ["Atome", 500_001],
  ])("sets no maximum of its own for %s (none in Fiuu's spec): %i sen is taken", async (channel, amount) => {
    const { res } = await create(paymentBody({ channel, amount }));
    expect(res.status).toBe(201);
  });

  it("keeps FPX B2B within Fiuu's RM 2.00 – 1,000,000", async () => {
    expect((await create(paymentBody({ channel: "FPX_B2B_CIMB", amount: 100_000_000 }))).res.status).toBe(201);
    const over = await create(paymentBody({ channel: "FPX_B2B_CIMB", amount: 100_000_001 }));
    expect(over.res.status).toBe(400);
  });

  it("answers 409 order_has_payment naming the open payment, and allows a new one after cancel", async () => {
    const orderId = newOrder();
    const first = await create(paymentBody({ order_id: orderId }));
    const second = await create(paymentBody({ order_id: orderId }));
    expect(second.res.status).toBe(409);
    expect(second.body).toMatchObject({ code: "order_has_payment", payment_id: first.body.id });
    const cancel = await t.app.request(`/v1/payments/${first.body.id}/cancel`, {
      method: "POST",
      headers: { ...service, "Idempotency-Key": newKey() },
    });
    expect(cancel.status).toBe(200);
    const third = await create(paymentBody({ order_id: orderId }));
    expect(third.res.status).toBe(201);
  });

  it("creates one payment from 20 concurrent identical requests", async () => {
    const body = paymentBody();
    const key = newKey();
    const answers = await Promise.all(Array.from({ length: 20 }, () => create(body, key)));
    const created = answers.filter((a) => a.res.status === 201);
    expect(created.length).toBeGreaterThanOrEqual(1);
    for (const a of answers) expect([201, 409]).toContain(a.res.status);
    expect(new Set(created.map((a) => a.body.id)).size).toBe(1);
    const { n } = (await rows<{ n: number }>(sql`select count(*)::int as n from payments where order_id = ${body.order_id}`))[0]!;
    expect(n).toBe(1);
  });

  it("creates one payment per order from concurrent requests with different keys", async () => {
    const orderId = newOrder();
    const answers = await Promise.all(Array.from({ length: 8 }, () => create(paymentBody({ order_id: orderId }))));
    expect(answers.filter((a) => a.res.status === 201)).toHaveLength(1);
    expect(answers.filter((a) => a.res.status === 409).every((a) => a.body.code === "order_has_payment")).toBe(true);
  });

  it("replays the first answer for a repeated key", async () => {
    const body = paymentBody();
    const key = newKey();
    const first = await create(body, key);
    const again = await create(body, key);
    expect(again.res.status).toBe(201);
    expect(again.res.headers.get("idempotency-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);
  });

  it("requires an Idempotency-Key", async () => {
    const res = await t.app.request("/v1/payments", jsonRequest("POST", paymentBody(), service));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("idempotency_key_missing");
  });

  it.each([
    ["no token", {}, 401],
    ["an admin token", "admin", 403],
    ["a system token", "system", 403],
  ])("refuses %s", async (_name, who, status) => {
    const headers = typeof who === "string" ? await bearer(t, who as "admin") : who;
    const { res } = await create(paymentBody(), newKey(), headers);
    expect(res.status).toBe(status);
  });
});

describe("reading payments", () => {
  it("shows a service everything and a client secret a masked view of its own payment", async () => {
    const { body: payment } = await create();
    const asService = await t.app.request(`/v1/payments/${payment.id}`, { headers: service });
    expect(((await asService.json()) as any).customer).toEqual(payment.customer);

    const asClient = await t.app.request(`/v1/payments/${payment.id}`, { headers: { "X-Client-Secret": payment.client_secret } });
    expect(asClient.status).toBe(200);
    const masked = (await asClient.json()) as any;
    // First letter of each word and at most six stars; the mobile's last four digits.
    expect(masked.customer).toEqual({ name: "S*** A*****", email: "s******@example.my", mobile: `${"*".repeat(11)}3915` });
    expect(JSON.stringify(masked)).not.toContain("siti.aminah");
    const viaQuery = await t.app.request(`/v1/payments/${payment.id}?client_secret=${encodeURIComponent(payment.client_secret)}`);
    expect(viaQuery.status).toBe(200);
  });

  it("does not let a client secret read another payment or list anything", async () => {
    const { body: mine } = await create();
    const { body: theirs } = await create();
    const other = await t.app.request(`/v1/payments/${theirs.id}`, { headers: { "X-Client-Secret": mine.client_secret } });
    expect(other.status).toBe(404);
    const list = await t.app.request("/v1/payments", { headers: { "X-Client-Secret": mine.client_secret } });
    expect(list.status).toBe(401);
    const cancel = await t.app.request(`/v1/payments/${mine.id}/cancel`, {
      method: "POST",
      headers: { "X-Client-Secret": mine.client_secret, "Idempotency-Key": newKey() },
    });
    expect(cancel.status).toBe(401);
  });

  it("answers 404 for an unknown payment", async () => {
    const res = await t.app.request("/v1/payments/pay_doesnotexist", { headers: service });
    expect(res.status).toBe(404);
  });

  it("lists newest first with filters and cursor pagination", async () => {
    const orderId = newOrder();
    const a = await create(paymentBody({ order_id: orderId }));
    await t.app.request(`/v1/payments/${a.body.id}/cancel`, { method: "POST", headers: { ...service, "Idempotency-Key": newKey() } });
    const b = await create(paymentBody({ order_id: orderId }));
    const page1 = (await (await t.app.request(`/v1/payments?order_id=${orderId}&limit=1`, { headers: service })).json()) as any;
    expect(page1).toMatchObject({ object: "list", has_more: true });
    expect(page1.data.map((p: any) => p.id)).toEqual([b.body.id]);
    const page2 = (await (
      await t.app.request(`/v1/payments?order_id=${orderId}&limit=1&starting_after=${b.body.id}`, { headers: service })
    ).json()) as any;
    expect(page2.data.map((p: any) => p.id)).toEqual([a.body.id]);
    expect(page2.has_more).toBe(false);
    const cancelled = (await (await t.app.request(`/v1/payments?order_id=${orderId}&status=cancelled`, { headers: service })).json()) as any;
    expect(cancelled.data.map((p: any) => p.id)).toEqual([a.body.id]);
    const bad = await t.app.request(`/v1/payments?limit=101`, { headers: service });
    expect(bad.status).toBe(400);
  });
});

describe("POST /v1/payments/:id/cancel", () => {
  it("cancels a created payment with an event and an audit row, and refuses a second cancel", async () => {
    const { body: payment } = await create();
    const res = await t.app.request(`/v1/payments/${payment.id}/cancel`, { method: "POST", headers: { ...service, "Idempotency-Key": newKey() } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).status).toBe("cancelled");
    const events = await rows<{ type: string }>(sql`select type from events where payment_id = ${payment.id}`);
    expect(events).toEqual([{ type: "payment.cancelled" }]);
    const audit = await rows<{ action: string }>(sql`select action from audit_log where entity_id = ${payment.id} order by id`);
    expect(audit.map((a) => a.action)).toEqual(["payment.created", "payment.cancelled"]);
    const again = await t.app.request(`/v1/payments/${payment.id}/cancel`, { method: "POST", headers: { ...service, "Idempotency-Key": newKey() } });
    expect(again.status).toBe(409);
    expect(((await again.json()) as any).code).toBe("invalid_state");
  });
});

describe("checkout", () => {
  it("signs the hosted-page form with the stored amount and Fiuu's vcode", async () => {
    const { body: payment } = await create(paymentBody({ amount: 1 }));
    const res = await t.app.request(
      `/v1/payments/${payment.id}/checkout`,
      jsonRequest("POST", { channel: "fpx" }, { "X-Client-Secret": payment.client_secret }),
    );
    // fpx needs at least RM 1.00
    expect(res.status).toBe(400);

    const ok = await t.app.request(`/v1/payments/${payment.id}/checkout`, jsonRequest("POST", {}, { "X-Client-Secret": payment.client_secret }));
    expect(ok.status).toBe(200);
    const form = (await ok.json()) as { method: string; url: string; fields: Record<string, string> };
    const { fiuu } = t.deps.config;
    expect(form.method).toBe("POST");
    expect(form.url).toBe(`http://payments.test/sandbox/fiuu/RMS/pay/${fiuu.merchantId}/`);
    expect(form.fields).toMatchObject({
      amount: "0.01",
      orderid: payment.gateway.order_id,
      bill_name: "Siti Aminah",
      bill_email: "siti.aminah@example.my",
      currency: "MYR",
      country: "MY",
      returnurl: "http://payments.test/webhooks/fiuu/return",
      callbackurl: "http://payments.test/webhooks/fiuu/callback",
    });
    expect(form.fields.vcode).toBe(md5(`0.01${fiuu.merchantId}${payment.gateway.order_id}${fiuu.verifyKey}`));
    const audit = await rows<{ action: string }>(sql`select action from audit_log where entity_id = ${payment.id} order by id`);
    expect(audit.map((a) => a.action)).toEqual(["payment.created", "payment.checkout_started"]);
  });

  it("does not let the browser choose the amount", async () => {
    const { body: payment } = await create();
    const res = await t.app.request(
      `/v1/payments/${payment.id}/checkout`,
      jsonRequest("POST", { amount: 1 }, { "X-Client-Secret": payment.client_secret }),
    );
    expect(res.status).toBe(400);
  });

  it("refuses checkout of a cancelled payment and of someone else's", async () => {
    const { body: payment } = await create();
    const { body: other } = await create();
    const foreign = await t.app.request(`/v1/payments/${other.id}/checkout`, jsonRequest("POST", {}, { "X-Client-Secret": payment.client_secret }));
    expect(foreign.status).toBe(404);
    await t.app.request(`/v1/payments/${payment.id}/cancel`, { method: "POST", headers: { ...service, "Idempotency-Key": newKey() } });
    const res = await t.app.request(`/v1/payments/${payment.id}/checkout`, jsonRequest("POST", {}, { "X-Client-Secret": payment.client_secret }));
    expect(res.status).toBe(409);
  });

  it("gives the seamless script the same values under mps* names, signed as mpsvcode", async () => {
    const { body: payment } = await create(paymentBody({ channel: "TNG-EWALLET" }));
    const res = await t.app.request(`/v1/payments/${payment.id}/seamless?client_secret=${encodeURIComponent(payment.client_secret)}`);
    expect(res.status).toBe(200);
    const fields = (await res.json()) as Record<string, string>;
    const { fiuu } = t.deps.config;
    expect(fields).toMatchObject({
      mpsmerchantid: fiuu.merchantId,
      mpschannel: "TNG-EWALLET",
      mpsamount: "10.50",
      mpsorderid: payment.gateway.order_id,
      mpsbill_name: "Siti Aminah",
      mpsbill_email: "siti.aminah@example.my",
      mpsbill_mobile: "+60 17-482 3915",
      mpscurrency: "MYR",
    });
    expect(fields.mpsvcode).toBe(md5(`10.50${fiuu.merchantId}${payment.gateway.order_id}${fiuu.verifyKey}`));
    // Fiuu's seamless script reads mpsvcode only; a payment holding every buyer detail is no guest checkout.
    expect(fields).not.toHaveProperty("vcode");
    expect(fields).not.toHaveProperty("mpsguest_checkout");
    expect(Object.keys(fields).every((name) => name.startsWith("mps"))).toBe(true);
  });

  it("sends guest_checkout=1 and no bill_mobile on the hosted form of a payment created without a mobile", async () => {
    const { body: payment } = await create(paymentBody({ customer: { name: "Siti Aminah", email: "siti.aminah@example.my" } }));
    expect(payment.customer.mobile).toBeNull();
    const res = await t.app.request(`/v1/payments/${payment.id}/checkout`, jsonRequest("POST", {}, { "X-Client-Secret": payment.client_secret }));
    expect(res.status).toBe(200);
    const { fields } = (await res.json()) as { fields: Record<string, string> };
    expect(fields).toMatchObject({ guest_checkout: "1", bill_name: "Siti Aminah", bill_email: "siti.aminah@example.my" });
    expect(fields).not.toHaveProperty("bill_mobile");
    const { fiuu } = t.deps.config;
    expect(fields.vcode).toBe(md5(`10.50${fiuu.merchantId}${payment.gateway.order_id}${fiuu.verifyKey}`));

    // The page a shopper opens carries the same: no bill_mobile input at all, not even an empty one.
    const page = await (await t.app.request(payment.checkout_url)).text();
    expect(page).toContain('<input type="hidden" name="guest_checkout" value="1">');
    expect(page).not.toContain('name="bill_mobile"');
  });

  it("sends mpsguest_checkout=1 and no mpsbill_mobile to the seamless script for a payment without a mobile", async () => {
    const { body: payment } = await create(paymentBody({ channel: "fpx", customer: { name: "Siti Aminah", email: "siti.aminah@example.my" } }));
    const res = await t.app.request(`/v1/payments/${payment.id}/seamless`, { headers: service });
    expect(res.status).toBe(200);
    const fields = (await res.json()) as Record<string, string>;
    const { fiuu } = t.deps.config;
    expect(fields).toMatchObject({ mpsguest_checkout: "1", mpsbill_name: "Siti Aminah", mpsbill_email: "siti.aminah@example.my", mpschannel: "fpx" });
    expect(fields.mpsvcode).toBe(md5(`10.50${fiuu.merchantId}${payment.gateway.order_id}${fiuu.verifyKey}`));
    expect(fields).not.toHaveProperty("mpsbill_mobile");
    expect(fields).not.toHaveProperty("vcode");
    expect(fields).not.toHaveProperty("guest_checkout");
  });

  it("sends bill_mobile and no guest_checkout when the payment has every buyer detail", async () => {
    const { body: payment } = await create();
    const res = await t.app.request(`/v1/payments/${payment.id}/checkout`, jsonRequest("POST", {}, service));
    const { fields } = (await res.json()) as { fields: Record<string, string> };
    expect(fields.bill_mobile).toBe("+60 17-482 3915");
    expect(fields).not.toHaveProperty("guest_checkout");
  });

  it("serves a page whose form submits itself to Fiuu, which accepts its signature", async () => {
    const { body: payment } = await create();
    const res = await t.app.request(payment.checkout_url);
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain(`action="http://payments.test/sandbox/fiuu/RMS/pay/${t.deps.config.fiuu.merchantId}/"`);
    expect(page).toContain('data-testid="pay-continue"');
    expect(page).toContain(".submit()");
    const fields = Object.fromEntries(
      [...page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [
        m[1]!,
        m[2]!.replace(/&#39;/g, "'").replace(/&amp;/g, "&"),
      ]),
    );
    expect(fields.amount).toBe("10.50");
    // What the browser would do next: post the form to the (sandbox) hosted page.
    const hosted = await t.app.request(`http://payments.test/sandbox/fiuu/RMS/pay/${t.deps.config.fiuu.merchantId}/`, {
      method: "POST",
      body: new URLSearchParams(fields),
    });
    expect(hosted.status).toBe(200);
    expect(await hosted.text()).toContain('data-testid="sandbox-approve"');
  });

  it("answers the checkout page with an HTML error for a wrong secret", async () => {
    const { body: payment } = await create();
    const res = await t.app.request(`/pay/${payment.id}?client_secret=wrong`);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toContain("text/html");
  });
});

describe("extended vcode", () => {
  it("hashes the currency too when FIUU_EXTENDED_VCODE is on", async () => {
    const ext = await createTestApp({ env: { FIUU_EXTENDED_VCODE: "true" } });
    try {
      const headers = { ...(await bearer(ext)), "Idempotency-Key": newKey() };
      const created = (await (await ext.app.request("/v1/payments", jsonRequest("POST", paymentBody(), headers))).json()) as any;
      const form = (await (await ext.app.request(`/v1/payments/${created.id}/checkout`, jsonRequest("POST", {}, await bearer(ext)))).json()) as any;
      const { fiuu } = ext.deps.config;
      expect(form.fields.vcode).toBe(md5(`10.50${fiuu.merchantId}${created.gateway.order_id}${fiuu.verifyKey}MYR`));
    } finally {
      await ext.close();
    }
  });
});

describe("GET /v1/payment-methods", () => {
  const list = async (query = "") => ((await (await t.app.request(`/v1/payment-methods${query}`)).json()) as { data: any[] }).data;

  it("lists enabled channels for a currency and amount, publicly", async () => {
    const all = await list();
    expect(all.length).toBe(44);
    const small = await list("?currency=MYR&amount=150");
    const codes = small.map((m: any) => m.code);
    expect(codes).toContain("fpx");
    expect(codes).not.toContain("FPX_M2E");
    const sgd = (await (await t.app.request("/v1/payment-methods?currency=SGD")).json()) as any;
    expect(sgd.data.map((m: any) => m.code)).toEqual(["credit"]);
    expect((await t.app.request("/v1/payment-methods?amount=-5")).status).toBe(400);
  });

  it("lists Fiuu's codes only: FPX_M2E for Maybank2E, no FPX_B2B_MB2U", async () => {
    const all = await list();
    const codes = all.map((m) => m.code);
    expect(codes).toContain("FPX_M2E");
    expect(codes).not.toContain("FPX_B2B_MB2U");
    expect(all.find((m) => m.code === "FPX_M2E")).toEqual({
      code: "FPX_M2E",
      name: "Maybank2E (FPX B2B)",
      type: "online_banking",
      currencies: ["MYR"],
      min_amount: 200,
      max_amount: 100_000_000,
    });
    for (const code of ["FPX_OCBC", "FPX_BOCM", "FPX_B2B_HSBC", "ShopBack", "cash99"]) expect(codes).toContain(code);
  });

  it("gives the limits as Fiuu's spec has them, with inclusive min_amount and no invented maxima", async () => {
    const byCode = new Map((await list()).map((m) => [m.code, m]));
    expect(byCode.get("fpx")).toMatchObject({ min_amount: 101, max_amount: null });
    expect(byCode.get("TNG-EWALLET")).toMatchObject({ type: "ewallet", min_amount: 101, max_amount: null });
    expect(byCode.get("ShopBack")).toMatchObject({ type: "ewallet", currencies: ["MYR"], min_amount: 101, max_amount: null });
    expect(byCode.get("cash99")).toMatchObject({ type: "cash", currencies: ["MYR"], min_amount: 101, max_amount: null });
    expect(byCode.get("Atome")).toMatchObject({ type: "bnpl", min_amount: 1001, max_amount: null });
    for (const method of byCode.values()) {
      if (method.code.startsWith("FPX_B2B_") || method.code === "FPX_M2E") expect(method).toMatchObject({ min_amount: 200, max_amount: 100_000_000 });
      else expect(method.max_amount).toBeNull();
    }
  });

  it("filters by amount as checkout does: RM 1.00 lists no FPX channel, RM 1.01 does; Atome from RM 10.01", async () => {
    const at = async (amount: number) => (await list(`?currency=MYR&amount=${amount}`)).map((m) => m.code as string);
    const one = await at(100);
    expect(one.filter((code) => code === "fpx" || code.startsWith("FPX_"))).toEqual([]);
    expect(one).toEqual([]);
    const justAbove = await at(101);
    expect(justAbove).toEqual(expect.arrayContaining(["fpx", "FPX_MB2U", "TNG-EWALLET", "cash", "credit"]));
    expect(justAbove).not.toContain("Atome");
    expect(justAbove).not.toContain("FPX_M2E");
    expect(await at(1000)).not.toContain("Atome");
    expect(await at(1001)).toContain("Atome");
    expect(await at(200)).toContain("FPX_M2E");
  });
});

describe("API documentation", () => {
  it("serves an OpenAPI 3.1 document of the routes", async () => {
    const doc = (await (await t.app.request("/openapi.json")).json()) as any;
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/v1/payments", "/v1/payments/{id}", "/v1/payments/{id}/checkout", "/v1/payment-methods"]),
    );
    expect(doc.components.schemas.CreatePayment.properties.amount.type).toBe("integer");
    expect(doc.components.securitySchemes.bearerAuth.scheme).toBe("bearer");
  });

  it("renders /docs without anything from another host", async () => {
    const res = await t.app.request("/docs");
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain("/v1/payments/{id}/checkout");
    expect(page).not.toMatch(/<(script|link|img)[^>]+(src|href)="https?:/);
  });
});
