import { sql } from "drizzle-orm";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../lib/adapters/db/client.js";
import { createFiuuSandbox } from "../../lib/adapters/fiuu/sandbox/index.js";
import { bearer, createTestApp, jsonRequest, type TestContext } from "../support/app.js";
import { createPayment, payThroughSandbox } from "../support/flow.js";

// The whole flow as a shopper's browser and Fiuu make it: the service's checkout page, the local
// sandbox's hosted page and its buttons, Fiuu's server-to-server reports, the return, and the jobs.

const payThrough = (
  t: TestContext,
  hosted: (url: string, init: RequestInit) => Response | Promise<Response>,
  checkoutUrl: string,
  outcome: "approve" | "decline" | "pending",
) => payThroughSandbox(t, checkoutUrl, outcome, hosted);

/** A hosted-page fetch that also keeps every payment form posted to Fiuu's /RMS/pay/{merchantID}/. */
function watchHostedPage(hosted: (url: string, init: RequestInit) => Response | Promise<Response>) {
  const sent: Record<string, string>[] = [];
  const watching = (url: string, init: RequestInit) => {
    if (/\/RMS\/pay\/[^/]+\/$/.test(new URL(url, "http://payments.test").pathname)) sent.push(Object.fromEntries(init.body as URLSearchParams));
    return hosted(url, init);
  };
  return { sent, watching };
}

const statusOf = async (t: TestContext, id: string) =>
  (await queryRows<{ status: string }>(t.database.handle.db, sql`select status from payments where id = ${id}`))[0]!.status;
const eventsOf = async (t: TestContext, id: string) =>
  (await queryRows<{ type: string }>(t.database.handle.db, sql`select type from events where payment_id = ${id} order by id`)).map((e) => e.type);

async function runJob(t: TestContext, job: "reconcile" | "expire") {
  const res = await t.app.request(`/jobs/${job}`, { method: "POST", headers: await bearer(t, "system") });
  expect(res.status).toBe(200);
  return (await res.json()) as { claimed: number; done: number; retried: number; failed: number };
}

describe("through the sandbox mounted on the service", () => {
  let t: TestContext;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());
  const hosted = (url: string, init: RequestInit) => t.app.request(url, init);

  it("approve → succeeded, one event, the shopper back on the result page, the IPN echoed", async () => {
    const payment = await createPayment(t);
    const { returned, tranID } = await payThrough(t, hosted, payment.checkout_url, "approve");
    expect(returned.status).toBe(303);
    expect(returned.headers.get("location")).toBe(`http://payments.test/pay/${payment.id}/result`);
    expect(await statusOf(t, payment.id)).toBe("succeeded");
    expect(await eventsOf(t, payment.id)).toEqual(["payment.succeeded"]);
    const result = await (await t.app.request(`/pay/${payment.id}/result`)).text();
    expect(result).toContain('data-testid="payment-status">succeeded<');

    const ran = await runJob(t, "reconcile");
    expect(ran.done).toBeGreaterThanOrEqual(1);
    const log = (await (await t.app.request("/sandbox/fiuu/_control/log")).json()) as { ipnEchoes: { fields: Record<string, string> }[] };
    const echoes = log.ipnEchoes.filter((e) => e.fields.tranID === tranID);
    expect(echoes.length).toBeGreaterThanOrEqual(1);
    for (const echo of echoes) expect(echo.fields.treq).toBe("1");
  });

  it("decline → failed", async () => {
    const payment = await createPayment(t);
    await payThrough(t, hosted, payment.checkout_url, "decline");
    expect(await statusOf(t, payment.id)).toBe("failed");
    expect(await eventsOf(t, payment.id)).toEqual(["payment.failed"]);
  });

  it("a payment without a mobile reaches Fiuu's hosted page as a guest checkout and is paid", async () => {
    const payment = await createPayment(t, { customer: { name: "Mei Ling", email: "mei@example.my" } });
    const { sent, watching } = watchHostedPage(hosted);
    const { returned } = await payThrough(t, watching, payment.checkout_url, "approve");
    expect(returned.status).toBe(303);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ guest_checkout: "1", bill_name: "Mei Ling", bill_email: "mei@example.my" });
    expect(sent[0]).not.toHaveProperty("bill_mobile");
    expect(await statusOf(t, payment.id)).toBe("succeeded");
  });

  it("a payment through Maybank2E goes to Fiuu as FPX_M2E", async () => {
    const payment = await createPayment(t, {
      channel: "FPX_M2E",
      amount: 200,
      customer: { name: "Mei Ling", email: "mei@example.my", mobile: "+60 17-482 3915" },
    });
    const { sent, watching } = watchHostedPage(hosted);
    await payThrough(t, watching, payment.checkout_url, "approve");
    expect(sent[0]).toMatchObject({ channel: "FPX_M2E", amount: "2.00" });
    expect(await statusOf(t, payment.id)).toBe("succeeded");
  });

  it("the seamless fields of a payment without a mobile are accepted by Fiuu's page as a guest checkout", async () => {
    const payment = await createPayment(t, { channel: "fpx", customer: { name: "Mei Ling", email: "mei@example.my" } });
    const res = await t.app.request(`/v1/payments/${payment.id}/seamless`, { headers: await bearer(t) });
    expect(res.status).toBe(200);
    const fields = (await res.json()) as Record<string, string>;
    expect(fields).toMatchObject({ mpsguest_checkout: "1", mpsvcode: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(fields).not.toHaveProperty("mpsbill_mobile");
    expect(fields).not.toHaveProperty("vcode");
    // What Fiuu's seamless script posts on the merchant page's behalf.
    const page = await hosted(`http://payments.test/sandbox/fiuu/RMS/pay/${t.deps.config.fiuu.merchantId}/`, {
      method: "POST",
      body: new URLSearchParams(fields),
    });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('data-testid="sandbox-approve"');
  });

  it("pending → pending until Fiuu settles it", async () => {
    const payment = await createPayment(t);
    const { tranID } = await payThrough(t, hosted, payment.checkout_url, "pending");
    expect(await statusOf(t, payment.id)).toBe("pending");
    const settle = await t.app.request(`/sandbox/fiuu/_control/transactions/${tranID}`, jsonRequest("POST", { status: "00" }));
    expect(settle.status).toBe(200);
    expect(await statusOf(t, payment.id)).toBe("succeeded");
    expect(await eventsOf(t, payment.id)).toEqual(["payment.pending", "payment.succeeded"]);
  });
});

describe("reconciliation when Fiuu's reports do not arrive", () => {
  // A sandbox of its own whose reports can be dropped, as if the network lost them.
  let deliver = true;
  let t: TestContext;
  let sandbox: Hono;
  let clock = 0;
  beforeAll(async () => {
    sandbox = new Hono();
    t = await createTestApp({ fiuuFetch: async (request) => sandbox.fetch(request), now: () => new Date(Date.now() + clock) });
    const { fiuu } = t.deps.config;
    sandbox.route(
      "/sandbox/fiuu",
      createFiuuSandbox({
        merchantId: fiuu.merchantId!,
        verifyKey: fiuu.verifyKey!,
        secretKey: fiuu.secretKey!,
        notifyUrl: "http://payments.test/webhooks/fiuu/notify",
        // As the mounted sandbox does: Fiuu's Q99 window at the interval the service is configured with (1 ms in tests).
        queryWindowMs: Math.min(5_000, fiuu.queryIntervalMs),
        fetch: async (request) => (deliver ? t.app.fetch(request) : new Response("dropped", { status: 502 })),
      }),
    );
  });
  afterAll(() => t.close());
  const hosted = (url: string, init: RequestInit) => sandbox.request(url, init);

  it("resolves a pending payment by requery", async () => {
    deliver = true;
    clock = 0;
    const payment = await createPayment(t);
    const { tranID } = await payThrough(t, hosted, payment.checkout_url, "pending");
    expect(await statusOf(t, payment.id)).toBe("pending");
    deliver = false;
    await sandbox.request(`/sandbox/fiuu/_control/transactions/${tranID}`, jsonRequest("POST", { status: "00" }));
    expect(await statusOf(t, payment.id)).toBe("pending");

    await runJob(t, "reconcile"); // the requery is not due for a minute yet
    expect(await statusOf(t, payment.id)).toBe("pending");
    clock = 2 * 60_000;
    await runJob(t, "reconcile");
    expect(await statusOf(t, payment.id)).toBe("succeeded");
    expect(await eventsOf(t, payment.id)).toEqual(["payment.pending", "payment.succeeded"]);
    const messages = await queryRows<{ kind: string; outcome: string }>(
      t.database.handle.db,
      sql`select kind, outcome from gateway_messages where payment_id = ${payment.id} and kind = 'requery'`,
    );
    expect(messages).toEqual([{ kind: "requery", outcome: "applied" }]);
  });

  it("backs off while Fiuu is down and applies the answer once it is back", async () => {
    deliver = true;
    clock = 0;
    const payment = await createPayment(t);
    const { tranID } = await payThrough(t, hosted, payment.checkout_url, "pending");
    deliver = false;
    await sandbox.request(`/sandbox/fiuu/_control/transactions/${tranID}`, jsonRequest("POST", { status: "00" }));
    await sandbox.request("/sandbox/fiuu/_control/faults", jsonRequest("POST", { mode: "error" }));
    clock = 2 * 60_000;
    const down = await runJob(t, "reconcile");
    expect(down.retried).toBeGreaterThanOrEqual(1);
    expect(await statusOf(t, payment.id)).toBe("pending");
    await sandbox.request("/sandbox/fiuu/_control/faults", jsonRequest("POST", { mode: "none" }));
    await new Promise((resolve) => setTimeout(resolve, 150)); // the breaker's reset (FIUU_BREAKER_RESET in tests)
    clock = 60 * 60_000;
    await runJob(t, "reconcile");
    expect(await statusOf(t, payment.id)).toBe("succeeded");
  });

  it("expires a payment past its time when Fiuu knows no transaction, and one never sent to Fiuu", async () => {
    deliver = true;
    clock = 0;
    const checkedOut = await createPayment(t);
    await t.app.request(checkedOut.checkout_url); // the page was opened; the shopper left before Fiuu
    const untouched = await createPayment(t);
    clock = 31 * 60_000;
    await runJob(t, "expire");
    expect(await statusOf(t, checkedOut.id)).toBe("expired");
    expect(await statusOf(t, untouched.id)).toBe("expired");
    expect(await eventsOf(t, checkedOut.id)).toEqual(["payment.expired"]);
  });

  it("does not expire a payment Fiuu says was paid at the last second", async () => {
    deliver = true;
    clock = 0;
    const payment = await createPayment(t);
    deliver = false;
    await payThrough(t, hosted, payment.checkout_url, "approve").catch(() => undefined);
    clock = 31 * 60_000;
    await runJob(t, "expire");
    expect(await statusOf(t, payment.id)).toBe("succeeded");
  });

  it("echoes the IPN again until Fiuu's endpoint takes it", async () => {
    deliver = true;
    clock = 0;
    await sandbox.request("/sandbox/fiuu/_control/faults", jsonRequest("POST", { mode: "error" }));
    const payment = await createPayment(t);
    const { tranID } = await payThrough(t, hosted, payment.checkout_url, "approve");
    const failed = await runJob(t, "reconcile");
    expect(failed.retried).toBeGreaterThanOrEqual(1);
    await sandbox.request("/sandbox/fiuu/_control/faults", jsonRequest("POST", { mode: "none" }));
    await new Promise((resolve) => setTimeout(resolve, 150)); // the breaker's reset (FIUU_BREAKER_RESET in tests)
    clock = 60 * 60_000;
    await runJob(t, "reconcile");
    const log = (await (await sandbox.request("/sandbox/fiuu/_control/log")).json()) as { ipnEchoes: { fields: Record<string, string> }[] };
    expect(log.ipnEchoes.some((e) => e.fields.tranID === tranID && e.fields.treq === "1")).toBe(true);
  });
});
