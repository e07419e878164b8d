import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../lib/adapters/db/client.js";
import { bearer, createTestApp, jsonRequest, newKey, type TestContext } from "../support/app.js";
import { formPost, signedReport } from "../support/fiuu.js";
import { payThroughSandbox } from "../support/flow.js";

// A realistic day in the logs (at trace level): a payment created, read, checked out, paid
// through the sandbox, echoed and delivered by the jobs, refunded and settled, a forged report, a
// forged refund notice, a Fiuu outage and assorted refused calls. Then every line the service
// wrote is searched for every secret and every piece of customer data the day involved.

const customer = { name: "Zainab Oyelaran-Tan", email: "zainab.oyelaran@example.my", mobile: "+60 17-555 0199" };
const forgedSkey = "0badc0de0badc0de0badc0de0badc0de";
const forgedSignature = "feedfacefeedfacefeedfacefeedface";

let t: TestContext;
/** Every secret value seen during the flow, by what it is. */
const secrets = new Map<string, string>();
let paymentId: string;

beforeAll(async () => {
  t = await createTestApp({ env: { LOG_LEVEL: "trace", WEBHOOK_URLS: "http://127.0.0.1:1/hooks" } });
  const { config } = t.deps;
  const service = await bearer(t, "service");
  const admin = await bearer(t, "admin", "ops-1");
  const system = await bearer(t, "system", "cron");

  const created = await t.app.request(
    "/v1/payments",
    jsonRequest(
      "POST",
      { order_id: `LOG-${Date.now()}`, amount: 2590, currency: "MYR", description: "Nasi lemak", customer, metadata: { cart: "c-77" } },
      { ...service, "Idempotency-Key": newKey() },
    ),
  );
  expect(created.status).toBe(201);
  const payment = (await created.json()) as { id: string; client_secret: string; checkout_url: string; gateway: { order_id: string } };
  paymentId = payment.id;

  await t.app.request(`/v1/payments/${payment.id}`, { headers: service });
  await t.app.request(`/v1/payments/${payment.id}`, { headers: { "X-Client-Secret": payment.client_secret } });
  const form = (await (
    await t.app.request(`/v1/payments/${payment.id}/checkout`, jsonRequest("POST", {}, { "X-Client-Secret": payment.client_secret }))
  ).json()) as { fields: Record<string, string> };
  await t.app.request(`/v1/payments/${payment.id}/seamless?client_secret=${payment.client_secret}`);
  const paid = await payThroughSandbox(t, payment.checkout_url, "approve");
  expect(paid.returned.status).toBe(303);

  await t.app.request("/jobs/reconcile", { method: "POST", headers: system });
  await t.app.request("/jobs/deliver", { method: "POST", headers: system });
  await t.app.request("/v1/events", { headers: admin });

  const refund = await t.app.request(
    `/v1/payments/${payment.id}/refunds`,
    jsonRequest("POST", { amount: 500, reason: "customer asked" }, { ...admin, "Idempotency-Key": newKey() }),
  );
  expect(refund.status).toBe(201);
  const { gateway } = (await refund.json()) as { gateway: { ref_id: string } };
  await t.app.request(`/sandbox/fiuu/_control/refunds/${gateway.ref_id}`, jsonRequest("POST", { status: "00" }));

  // Forgeries and errors.
  const forged = signedReport(config.fiuu, { orderid: payment.gateway.order_id, status: "00", amount: "25.90", nbcb: "2" });
  expect((await t.app.request("/webhooks/fiuu/notify", formPost({ ...forged, skey: forgedSkey }))).status).toBe(400);
  const notice = {
    RefundType: "P",
    MerchantID: config.fiuu.merchantId!,
    RefID: gateway.ref_id,
    RefundID: "1",
    TxnID: "1",
    Amount: "5.00",
    Status: "00",
    Signature: forgedSignature,
  };
  expect((await t.app.request("/webhooks/fiuu/refund", formPost(notice))).status).toBe(400);
  await t.app.request(`/v1/payments/${payment.id}`, { headers: { Authorization: `Bearer ${service.Authorization.slice(7)}x` } });
  await t.app.request(`/v1/payments/${payment.id}`, { headers: { "X-Client-Secret": `${payment.client_secret}-wrong` } });
  await t.app.request(
    "/v1/payments",
    jsonRequest(
      "POST",
      { order_id: "bad", amount: -1, currency: "MYR", description: "x", customer: { ...customer, email: `${customer.email}!` } },
      { ...service, "Idempotency-Key": newKey() },
    ),
  );
  await t.app.request(`/v1/payments/${payment.id}/cancel`, { method: "POST", headers: { ...service, "Idempotency-Key": newKey() } });
  await t.app.request("/sandbox/fiuu/_control/faults", jsonRequest("POST", { mode: "down" }));
  await t.app.request(`/v1/payments/${payment.id}/refunds`, jsonRequest("POST", { amount: 100 }, { ...service, "Idempotency-Key": newKey() }));
  await t.app.request("/jobs/reconcile", { method: "POST", headers: system });
  await t.app.request("/sandbox/fiuu/_control/faults", jsonRequest("POST", { mode: "none" }));

  // Every secret and signature value the day involved.
  secrets.set("JWT_SECRET", config.jwtSecret!);
  secrets.set("ENCRYPTION_KEY (hex)", config.encryptionKey!.toString("hex"));
  secrets.set("ENCRYPTION_KEY (base64)", config.encryptionKey!.toString("base64"));
  secrets.set("FIUU_VERIFY_KEY", config.fiuu.verifyKey!);
  secrets.set("FIUU_SECRET_KEY", config.fiuu.secretKey!);
  secrets.set("WEBHOOK_SECRET", config.webhooks.secret!);
  secrets.set("WEBHOOK_SECRET (key)", config.webhooks.secret!.replace(/^whsec_/, ""));
  secrets.set("client secret", payment.client_secret);
  for (const [who, header] of Object.entries({ service, admin, system })) secrets.set(`${who} bearer token`, header.Authorization.slice(7));
  secrets.set("customer name", customer.name);
  secrets.set("customer email", customer.email);
  secrets.set("customer mobile", customer.mobile);
  secrets.set("customer mobile digits", customer.mobile.replace(/\D/g, ""));
  secrets.set("vcode of the checkout form", form.fields.vcode!);
  secrets.set("forged skey", forgedSkey);
  secrets.set("forged refund Signature", forgedSignature);
  const messages = await queryRows<{ kind: string; skey: string | null; signature: string | null }>(
    t.database.handle.db,
    sql`select kind, fields->>'skey' as skey, fields->>'Signature' as signature from gateway_messages`,
  );
  for (const [i, m] of messages.entries()) {
    if (m.skey) secrets.set(`skey of ${m.kind} #${i}`, m.skey);
    if (m.signature) secrets.set(`Signature of ${m.kind} #${i}`, m.signature);
  }
  const sandboxLog = (await (await t.app.request("/sandbox/fiuu/_control/log")).json()) as {
    deliveries: { fields?: Record<string, string> }[];
    ipnEchoes: { fields?: Record<string, string> }[];
  };
  for (const [i, entry] of [...sandboxLog.deliveries, ...sandboxLog.ipnEchoes].entries()) {
    if (entry.fields?.skey) secrets.set(`skey sent by the sandbox #${i}`, entry.fields.skey);
  }
}, 120_000);
afterAll(() => t.close());

describe("the logs of a realistic flow", () => {
  it("were written: requests, the rejected reports, the outage, all about this payment", () => {
    const lines = t.logs.lines;
    expect(lines.filter((l) => l.msg === "request").length).toBeGreaterThan(20);
    expect(lines.some((l) => l.msg === "Fiuu message rejected" && l.payment_id === paymentId)).toBe(true);
    expect(lines.some((l) => l.level === "warn" || l.level === "error")).toBe(true);
    expect(t.logs.raw.some((line) => line.includes(paymentId))).toBe(true);
    // The search below looks for what it should: at least a few skeys and signatures were collected.
    expect([...secrets.keys()].filter((k) => k.startsWith("skey of")).length).toBeGreaterThanOrEqual(3);
    expect([...secrets.keys()].some((k) => k.startsWith("Signature of refund_notice"))).toBe(true);
  });

  it("contain no secret, token, signature or customer detail, in any line", () => {
    expect(secrets.size).toBeGreaterThan(20);
    const leaks: string[] = [];
    for (const [what, value] of secrets) {
      expect(value.length, what).toBeGreaterThanOrEqual(8);
      const line = t.logs.raw.find((l) => l.includes(value));
      if (line) leaks.push(`${what}: ${line.slice(0, 300)}`);
    }
    expect(leaks).toEqual([]);
  });
});
