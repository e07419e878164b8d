import { createHash } from "node:crypto";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createFiuuSandbox, type FiuuSandboxOptions } from "../../lib/fiuu/sandbox/index.js";
import { verifySkey } from "../../lib/fiuu/signatures.js";

// Every expected signature here is recomputed with node:crypto from FIUU.md's formulas, so a wrong
// formula in lib/fiuu cannot make its own test pass.
const md5 = (text: string) => createHash("md5").update(text, "utf8").digest("hex");

const merchantId = "SB_testshop";
const verifyKey = "vk_0123456789abcdef";
const secretKey = "sk_fedcba9876543210";
const shop = "https://shop.example";

interface Received {
  path: string;
  fields: Record<string, string>;
}

/** The merchant's server as the sandbox reaches it: records every form POST, answers like a good merchant. */
function fakeMerchant(options: { hang?: boolean; fail?: boolean } = {}) {
  const received: Received[] = [];
  const app = new Hono();
  const record = async (path: string, body: Record<string, string | File>) => {
    const fields: Record<string, string> = {};
    for (const [name, value] of Object.entries(body)) if (typeof value === "string") fields[name] = value;
    received.push({ path, fields });
    if (options.hang) await new Promise(() => {});
  };
  app.post("/fiuu/notify", async (c) => {
    await record("/fiuu/notify", await c.req.parseBody());
    return c.text("OK");
  });
  app.post("/fiuu/callback", async (c) => {
    await record("/fiuu/callback", await c.req.parseBody());
    return c.text("CBTOKEN:MPSTATOK");
  });
  app.post("/fiuu/refund", async (c) => {
    await record("/fiuu/refund", await c.req.parseBody());
    return c.text("OK");
  });
  const fetch = async (request: Request) => {
    if (options.fail) throw new TypeError("fetch failed");
    return app.fetch(request);
  };
  return { received, fetch, on: (path: string) => received.filter((r) => r.path === path) };
}

function setup(overrides: Partial<FiuuSandboxOptions> = {}, merchantOptions: { hang?: boolean; fail?: boolean } = {}) {
  const merchant = fakeMerchant(merchantOptions);
  const sandbox = createFiuuSandbox({ merchantId, verifyKey, secretKey, notifyUrl: `${shop}/fiuu/notify`, fetch: merchant.fetch, ...overrides });
  return { sandbox, merchant };
}

type Sandbox = ReturnType<typeof createFiuuSandbox>;

async function post(sandbox: Sandbox, path: string, fields: Record<string, string>): Promise<Response> {
  return sandbox.request(path, { method: "POST", body: new URLSearchParams(fields) });
}

async function postJson(sandbox: Sandbox, path: string, body: unknown): Promise<Response> {
  return sandbox.request(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

/** A payment form as a merchant builds it, vcode computed here from FIUU.md's formula. */
function paymentForm(overrides: Record<string, string> = {}, extended = false): Record<string, string> {
  const form: Record<string, string> = {
    amount: "10.50",
    orderid: "ORD20240101A",
    bill_name: "Siti Aminah",
    bill_email: "siti@example.my",
    bill_mobile: "0191234567",
    bill_desc: "Order ORD20240101A: 2 items",
    currency: "MYR",
    country: "MY",
    channel: "FPX_MB2U",
    returnurl: `${shop}/fiuu/return`,
    callbackurl: `${shop}/fiuu/callback`,
    langcode: "en",
    ...overrides,
  };
  form.vcode ??= md5(form.amount! + merchantId + form.orderid! + verifyKey + (extended ? form.currency! : ""));
  return form;
}

function decodeHtml(text: string): string {
  return text.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function hiddenInputs(html: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const match of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) fields[decodeHtml(match[1]!)] = decodeHtml(match[2]!);
  return fields;
}

function formAction(html: string, testId: string): string {
  const form = new RegExp(`<form[^>]*\\smethod="post"[^>]*\\saction="([^"]*)"[^>]*>(?:(?!</form>)[\\s\\S])*data-testid="${testId}"`).exec(html);
  if (!form) throw new Error(`no form with ${testId}`);
  return decodeHtml(form[1]!);
}

async function storedTransactions(sandbox: Sandbox): Promise<Array<Record<string, unknown>>> {
  const body = (await (await sandbox.request("/_control/transactions")).json()) as { transactions: Array<Record<string, unknown>> };
  return body.transactions;
}

/** Opens the hosted page and presses one of its buttons; returns the page, its tranID and the return page. */
async function pay(sandbox: Sandbox, outcome: "approve" | "decline" | "pending", overrides: Record<string, string> = {}) {
  const page = await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm(overrides));
  expect(page.status).toBe(200);
  const html = await page.text();
  const action = formAction(html, `sandbox-${outcome}`);
  const tranID = hiddenInputs(html).tranID!;
  const result = await post(sandbox, action, { tranID, outcome });
  return { tranID, result, returnHtml: await result.text() };
}

/** The skey of a report, computed here from FIUU.md §2. */
function expectedSkey(f: Record<string, string>): string {
  const key0 = md5(f.tranID! + f.orderid! + f.status! + f.domain! + f.amount! + f.currency!);
  return md5(f.paydate! + f.domain! + key0 + f.appcode! + secretKey);
}

describe("Fiuu sandbox: hosted payment page", () => {
  it("refuses a wrong vcode with P03 and stores nothing", async () => {
    const { sandbox } = setup();
    const response = await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm({ vcode: md5("something else") }));
    expect(response.status).toBe(400);
    const html = await response.text();
    expect(html).toContain("P03");
    expect(html).toMatch(/invalid vcode/i);
    expect(await storedTransactions(sandbox)).toEqual([]);
  });

  it("refuses a vcode computed over a differently written amount", async () => {
    const { sandbox } = setup();
    const form = paymentForm();
    const response = await post(sandbox, `/RMS/pay/${merchantId}/`, { ...form, amount: "10.5" });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain("P03");
  });

  it("shows an error page for an unknown merchant", async () => {
    const { sandbox } = setup();
    const response = await post(sandbox, "/RMS/pay/SB_someoneelse/", paymentForm());
    expect(response.status).toBe(404);
    expect(await response.text()).toMatch(/unknown merchant/i);
  });

  it.each(["1,000.00", "10.5", "1e3", "0.00", "-1.00"])("refuses the amount %j even with a matching vcode", async (amount) => {
    const { sandbox } = setup();
    const response = await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm({ amount }));
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(/invalid amount/i);
    expect(await storedTransactions(sandbox)).toEqual([]);
  });

  it("shows merchant, order, amount, channel and the three buttons for a correct vcode", async () => {
    const { sandbox } = setup();
    const response = await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm());
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/text\/html/);
    const html = await response.text();
    expect(html).toContain(merchantId);
    expect(html).toContain("ORD20240101A");
    expect(html).toContain("MYR 10.50");
    expect(html).toContain("FPX_MB2U");
    expect(html).toContain("Order ORD20240101A: 2 items");
    for (const id of ["sandbox-approve", "sandbox-decline", "sandbox-pending"]) {
      expect(html).toContain(`data-testid="${id}"`);
      expect(formAction(html, id)).toBe(`/RMS/pay/${merchantId}/decide`);
    }
    expect(html).not.toMatch(/<(link|script)[^>]+(src|href)="(?!data:)/);
    const tranID = hiddenInputs(html).tranID!;
    expect(tranID).toMatch(/^[1-9][0-9]{9,11}$/);
    const stored = await storedTransactions(sandbox);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ tranID, orderid: "ORD20240101A", amount: "10.50", status: "awaiting" });
  });

  it("says the shopper chooses when no channel is given, on GET and without the trailing slash", async () => {
    const { sandbox } = setup();
    const form = paymentForm();
    delete form.channel;
    const response = await sandbox.request(`/MOLPay/pay/${merchantId}?${new URLSearchParams(form)}`);
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain("shopper chooses");
    expect(formAction(html, "sandbox-approve")).toBe(`/MOLPay/pay/${merchantId}/decide`);
  });

  it("escapes what the form sent", async () => {
    const { sandbox } = setup();
    const response = await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm({ bill_desc: `<script>alert("x")</script>` }));
    const html = await response.text();
    expect(html).not.toContain(`<script>alert`);
    expect(html).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
  });

  it("accepts only the extended vcode when the merchant has it enabled", async () => {
    const { sandbox } = setup({ extendedVcode: true });
    const plain = await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm());
    expect(plain.status).toBe(400);
    expect(await plain.text()).toContain("P03");
    const extended = await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm({}, true));
    expect(extended.status).toBe(200);
    const html = await extended.text();
    expect(html).toContain("MYR 10.50");
    expect(html).toContain('data-testid="sandbox-approve"');
  });

  it("refuses the same order and amount once it has been attempted (P09), but shows an undecided one again", async () => {
    const { sandbox } = setup();
    const first = await (await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm())).text();
    const again = await (await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm())).text();
    expect(hiddenInputs(again).tranID).toBe(hiddenInputs(first).tranID);
    await post(sandbox, `/RMS/pay/${merchantId}/decide`, { tranID: hiddenInputs(first).tranID!, outcome: "decline" });
    const duplicate = await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm());
    expect(duplicate.status).toBe(409);
    expect(await duplicate.text()).toContain("P09");
  });

  it("works mounted under /sandbox/fiuu, with links that follow the mount", async () => {
    const { sandbox, merchant } = setup();
    const parent = new Hono();
    parent.route("/sandbox/fiuu", sandbox);
    const page = await parent.request(`/sandbox/fiuu/RMS/pay/${merchantId}/`, { method: "POST", body: new URLSearchParams(paymentForm()) });
    const html = await page.text();
    const action = formAction(html, "sandbox-approve");
    expect(action).toBe(`/sandbox/fiuu/RMS/pay/${merchantId}/decide`);
    const result = await parent.request(action, { method: "POST", body: new URLSearchParams({ tranID: hiddenInputs(html).tranID!, outcome: "approve" }) });
    expect(result.status).toBe(200);
    expect(merchant.on("/fiuu/notify")).toHaveLength(1);
  });
});

describe("Fiuu sandbox: reports", () => {
  it("approve: notification and callback arrive signed, with the form's amount string, then the browser goes back", async () => {
    const { sandbox, merchant } = setup();
    const { tranID, result, returnHtml } = await pay(sandbox, "approve");
    expect(result.status).toBe(200);

    const [notification] = merchant.on("/fiuu/notify");
    const [callback] = merchant.on("/fiuu/callback");
    expect(notification?.fields.nbcb).toBe("2");
    expect(callback?.fields.nbcb).toBe("1");
    for (const report of [notification!.fields, callback!.fields]) {
      expect(report).toMatchObject({ tranID, orderid: "ORD20240101A", status: "00", domain: merchantId, amount: "10.50", currency: "MYR", channel: "maybank2u" });
      expect(report.appcode).toMatch(/^[0-9]{6}$/);
      expect(report.paydate).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
      expect(report.skey).toBe(expectedSkey(report));
      expect(verifySkey(report, secretKey)).toBe(true);
      expect(report.error_code).toBeUndefined();
    }

    expect(formAction(returnHtml, "sandbox-continue")).toBe(`${shop}/fiuu/return`);
    expect(returnHtml).toMatch(/<script>document\.getElementById\("fiuu-return"\)\.submit\(\);<\/script>/);
    const returned = hiddenInputs(returnHtml);
    const { nbcb: _nbcb, ...withoutNbcb } = notification!.fields;
    expect(returned).toEqual(withoutNbcb);
    expect(returned.nbcb).toBeUndefined();

    const log = (await (await sandbox.request("/_control/log")).json()) as { deliveries: Array<Record<string, unknown>> };
    expect(log.deliveries).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: "notification", url: `${shop}/fiuu/notify`, status: 200, body: "OK" }),
        expect.objectContaining({ kind: "callback", url: `${shop}/fiuu/callback`, status: 200, body: "CBTOKEN:MPSTATOK" }),
      ]),
    );
  });

  it("reports an integer amount exactly as the form wrote it", async () => {
    const { sandbox, merchant } = setup();
    await pay(sandbox, "approve", { amount: "3899" });
    const report = merchant.on("/fiuu/notify")[0]!.fields;
    expect(report.amount).toBe("3899");
    expect(report.skey).toBe(expectedSkey(report));
  });

  it("paydate is Malaysia time", async () => {
    const { sandbox, merchant } = setup({ now: () => new Date("2024-03-01T17:30:05Z") });
    await pay(sandbox, "approve");
    expect(merchant.on("/fiuu/notify")[0]!.fields.paydate).toBe("2024-03-02 01:30:05");
  });

  it("decline: status 11 with an error code, no appcode", async () => {
    const { sandbox, merchant } = setup();
    const { returnHtml } = await pay(sandbox, "decline");
    const report = merchant.on("/fiuu/notify")[0]!.fields;
    expect(report.status).toBe("11");
    expect(report.appcode).toBe("");
    expect(report.error_code).toBeTruthy();
    expect(report.error_desc).toBeTruthy();
    expect(report.skey).toBe(expectedSkey(report));
    expect(hiddenInputs(returnHtml).status).toBe("11");
  });

  it("pending: 22 first, then settling it to 00 reports again by notification and callback", async () => {
    const { sandbox, merchant } = setup();
    const { tranID } = await pay(sandbox, "pending");
    expect(merchant.on("/fiuu/notify").map((r) => r.fields.status)).toEqual(["22"]);

    const settled = await postJson(sandbox, `/_control/transactions/${tranID}`, { status: "00" });
    expect(settled.status).toBe(200);
    const notifications = merchant.on("/fiuu/notify");
    const callbacks = merchant.on("/fiuu/callback");
    expect(notifications.map((r) => r.fields.status)).toEqual(["22", "00"]);
    expect(callbacks.map((r) => r.fields.status)).toEqual(["22", "00"]);
    const final = notifications[1]!.fields;
    expect(final.tranID).toBe(tranID);
    expect(final.skey).toBe(expectedSkey(final));
    expect(final.appcode).toMatch(/^[0-9]{6}$/);

    const again = await postJson(sandbox, `/_control/transactions/${tranID}`, { status: "11" });
    expect(again.status).toBe(409);
    expect(merchant.on("/fiuu/notify")).toHaveLength(2);
  });

  it("a decided transaction cannot be decided again", async () => {
    const { sandbox } = setup();
    const { tranID } = await pay(sandbox, "approve");
    const second = await post(sandbox, `/RMS/pay/${merchantId}/decide`, { tranID, outcome: "decline" });
    expect(second.status).toBe(409);
  });

  it("records a merchant that cannot be reached, and still sends the shopper back", async () => {
    const { sandbox } = setup({}, { fail: true });
    const { result } = await pay(sandbox, "approve");
    expect(result.status).toBe(200);
    const log = (await (await sandbox.request("/_control/log")).json()) as { deliveries: Array<{ error?: string; status?: number }> };
    expect(log.deliveries).toHaveLength(2);
    for (const delivery of log.deliveries) {
      expect(delivery.error).toMatch(/fetch failed/);
      expect(delivery.status).toBeUndefined();
    }
  });

  it("gives up on a merchant that does not answer in time", async () => {
    const { sandbox } = setup({ deliveryTimeoutMs: 50 }, { hang: true });
    const { result } = await pay(sandbox, "approve");
    expect(result.status).toBe(200);
    const log = (await (await sandbox.request("/_control/log")).json()) as { deliveries: Array<{ error?: string }> };
    expect(log.deliveries.map((d) => d.error)).toEqual(["no answer within 50 ms", "no answer within 50 ms"]);
  });
});

describe("Fiuu sandbox: IPN echo", () => {
  it("records an echo of a notification with treq=1", async () => {
    const { sandbox, merchant } = setup();
    await pay(sandbox, "approve");
    const notification = merchant.on("/fiuu/notify")[0]!.fields;
    const response = await post(sandbox, "/RMS/API/chkstat/returnipn.php", { ...notification, treq: "1" });
    expect(response.status).toBe(200);
    const log = (await (await sandbox.request("/_control/log")).json()) as { ipnEchoes: Array<{ fields: Record<string, string>; problems: string[] }> };
    expect(log.ipnEchoes).toHaveLength(1);
    expect(log.ipnEchoes[0]!.fields).toEqual({ ...notification, treq: "1" });
    expect(log.ipnEchoes[0]!.problems).toEqual([]);
  });

  it("notes an echo without treq=1 or with changed fields", async () => {
    const { sandbox, merchant } = setup();
    await pay(sandbox, "approve");
    const notification = merchant.on("/fiuu/notify")[0]!.fields;
    await post(sandbox, "/RMS/API/chkstat/returnipn.php", { ...notification });
    await post(sandbox, "/RMS/API/chkstat/returnipn.php", { ...notification, amount: "10.5", treq: "1" });
    const log = (await (await sandbox.request("/_control/log")).json()) as { ipnEchoes: Array<{ problems: string[] }> };
    expect(log.ipnEchoes[0]!.problems).toEqual(["treq=1 is missing"]);
    expect(log.ipnEchoes[1]!.problems).toHaveLength(1);
  });
});

function parseText(body: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of body.split("\n").filter(Boolean)) {
    const at = line.indexOf("=");
    fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}

describe("Fiuu sandbox: requery", () => {
  const byOrder = (oID: string, amount: string, type: string) => ({ amount, oID, domain: merchantId, skey: md5(oID + merchantId + verifyKey + amount), type });
  const byTran = (txID: string, amount: string, type: string) => ({ amount, txID, domain: merchantId, skey: md5(txID + merchantId + verifyKey + amount), type });

  it("answers by order id in JSON with a VrfKey that verifies", async () => {
    const { sandbox } = setup();
    const { tranID } = await pay(sandbox, "approve");
    const response = await post(sandbox, "/RMS/query/q_by_oid.php", byOrder("ORD20240101A", "10.50", "2"));
    expect(response.status).toBe(200);
    const answer = (await response.json()) as Record<string, string>;
    expect(answer).toMatchObject({
      StatCode: "00",
      TranID: tranID,
      Amount: "10.50",
      Domain: merchantId,
      Channel: "maybank2u",
      Currency: "MYR",
      OrderID: "ORD20240101A",
      BillingName: "Siti Aminah",
    });
    expect(answer.StatName).toBeTruthy();
    expect(answer.BillingDate).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(answer.VrfKey).toBe(md5(answer.Amount! + secretKey + answer.Domain! + answer.OrderID! + answer.StatCode!));
  });

  it("answers by order id in plain text Key=Value lines, also on GET", async () => {
    const { sandbox } = setup();
    await pay(sandbox, "decline");
    const response = await sandbox.request(`/RMS/query/q_by_oid.php?${new URLSearchParams(byOrder("ORD20240101A", "10.50", "0"))}`);
    expect(response.headers.get("content-type")).toMatch(/text\/plain/);
    const answer = parseText(await response.text());
    expect(answer.StatCode).toBe("11");
    expect(answer.ErrorCode).toBeTruthy();
    expect(answer.VrfKey).toBe(md5("10.50" + secretKey + merchantId + "ORD20240101A" + "11"));
  });

  it.each(["/RMS/API/gate-query/index.php", "/RMS/q_by_tid.php"])("answers by tranID on %s with a VrfKey over the TranID", async (path) => {
    const { sandbox } = setup();
    const { tranID } = await pay(sandbox, "pending");
    const answer = (await (await post(sandbox, path, byTran(tranID, "10.50", "2"))).json()) as Record<string, string>;
    expect(answer.StatCode).toBe("22");
    expect(answer.TranID).toBe(tranID);
    expect(answer.OrderID).toBeUndefined();
    expect(answer.VrfKey).toBe(md5("10.50" + secretKey + merchantId + tranID + "22"));
  });

  it("refuses a wrong request skey without naming a status", async () => {
    const { sandbox } = setup();
    await pay(sandbox, "approve");
    const request = { ...byOrder("ORD20240101A", "10.50", "2"), skey: md5("ORD20240101A" + merchantId + "wrong" + "10.50") };
    const answer = (await (await post(sandbox, "/RMS/query/q_by_oid.php", request)).json()) as Record<string, string>;
    expect(answer.ErrorCode).toBe("Q03");
    expect(answer.StatCode).toBeUndefined();
    expect(answer.VrfKey).toBeUndefined();
  });

  it("answers an unknown order as a signed failure", async () => {
    const { sandbox } = setup();
    const answer = (await (await post(sandbox, "/RMS/query/q_by_oid.php", byOrder("NOSUCHORDER", "10.00", "2"))).json()) as Record<string, string>;
    expect(answer.StatCode).toBe("11");
    expect(answer.ErrorDesc).toMatch(/not found/i);
    expect(answer.VrfKey).toBe(md5("10.00" + secretKey + merchantId + "NOSUCHORDER" + "11"));
  });

  it("throttles to one query per 5 seconds only when asked to", async () => {
    let now = new Date("2024-03-01T00:00:00Z");
    const { sandbox } = setup({ enforceQueryRate: true, now: () => now });
    const query = () => post(sandbox, "/RMS/query/q_by_oid.php", byOrder("NOSUCHORDER", "10.00", "2")).then((r) => r.json() as Promise<Record<string, string>>);
    expect((await query()).StatCode).toBe("11");
    expect((await query()).ErrorCode).toBe("Q99");
    now = new Date(now.getTime() + 5_000);
    expect((await query()).StatCode).toBe("11");

    const relaxed = setup().sandbox;
    for (let i = 0; i < 3; i++) {
      const answer = (await (await post(relaxed, "/RMS/query/q_by_oid.php", byOrder("NOSUCHORDER", "10.00", "2"))).json()) as Record<string, string>;
      expect(answer.ErrorCode).not.toBe("Q99");
    }
  });
});

describe("Fiuu sandbox: refunds", () => {
  const refundRequest = (txnId: string, refId: string, amount: string, extra: Record<string, string> = {}) => ({
    RefundType: "P",
    MerchantID: merchantId,
    RefID: refId,
    TxnID: txnId,
    Amount: amount,
    Signature: md5("P" + merchantId + refId + txnId + amount + secretKey),
    ...extra,
  });
  const refund = async (sandbox: Sandbox, fields: Record<string, string>) =>
    (await (await post(sandbox, "/RMS/API/refundAPI/index.php", fields)).json()) as Record<string, string>;

  it("accepts a refund as pending, with an answer signature that verifies", async () => {
    const { sandbox } = setup();
    const { tranID } = await pay(sandbox, "approve");
    const answer = await refund(sandbox, refundRequest(tranID, "RF1", "5.00"));
    expect(answer).toMatchObject({ RefundType: "P", MerchantID: merchantId, RefID: "RF1", TxnID: tranID, Amount: "5.00", Status: "22" });
    expect(answer.RefundID).toMatch(/^[0-9]+$/);
    expect(answer).toHaveProperty("reason");
    expect(answer.Signature).toBe(md5("P" + merchantId + "RF1" + answer.RefundID + tranID + "5.00" + "22" + secretKey));
  });

  it("returns the same refund for the same RefID, never a second one", async () => {
    const { sandbox } = setup();
    const { tranID } = await pay(sandbox, "approve");
    const first = await refund(sandbox, refundRequest(tranID, "RF1", "10.50"));
    const second = await refund(sandbox, refundRequest(tranID, "RF1", "10.50"));
    expect(second).toEqual(first);
    const listed = (await (await post(sandbox, "/RMS/API/refundAPI/q_by_txn.php", {
      TxnID: tranID,
      MerchantID: merchantId,
      Signature: md5(tranID + merchantId + verifyKey),
    })).json()) as Array<Record<string, string>>;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ RefID: "RF1", RefundID: first.RefundID, Status: "pending" });
  });

  it("refuses a refund beyond what is left of the payment", async () => {
    const { sandbox } = setup();
    const { tranID } = await pay(sandbox, "approve");
    expect((await refund(sandbox, refundRequest(tranID, "RF1", "6.00"))).Status).toBe("22");
    const over = await refund(sandbox, refundRequest(tranID, "RF2", "4.51"));
    expect(over.error_code).toBe("PR006");
    expect(over.error_desc).toBeTruthy();
    expect((await refund(sandbox, refundRequest(tranID, "RF3", "4.50"))).Status).toBe("22");
  });

  it("refuses a bad signature, an unknown TxnID and an unpaid transaction", async () => {
    const { sandbox } = setup();
    const paid = await pay(sandbox, "approve");
    const bad = await refund(sandbox, { ...refundRequest(paid.tranID, "RF1", "1.00"), Signature: md5("P" + merchantId + "RF1" + paid.tranID + "1.00" + "wrong") });
    expect(bad.error_code).toBe("PR003");
    const tampered = await refund(sandbox, { ...refundRequest(paid.tranID, "RF1", "1.00"), Amount: "10.00" });
    expect(tampered.error_code).toBe("PR003");
    expect((await refund(sandbox, refundRequest("999999999999", "RF2", "1.00"))).error_code).toBe("PR004");
    const declined = await pay(sandbox, "decline", { orderid: "ORD2" });
    expect((await refund(sandbox, refundRequest(declined.tranID, "RF3", "1.00"))).error_code).toBe("PR005");
  });

  it("settling a refund posts a signed notice to its notify_url and shows in the status query", async () => {
    const { sandbox, merchant } = setup();
    const { tranID } = await pay(sandbox, "approve");
    const accepted = await refund(sandbox, refundRequest(tranID, "RF1", "10.50", { notify_url: `${shop}/fiuu/refund` }));
    const settled = await postJson(sandbox, "/_control/refunds/RF1", { status: "00" });
    expect(settled.status).toBe(200);
    const [notice] = merchant.on("/fiuu/refund");
    expect(notice?.fields).toMatchObject({ RefID: "RF1", RefundID: accepted.RefundID, TxnID: tranID, Amount: "10.50", Status: "00" });
    expect(notice!.fields.Signature).toBe(md5("P" + merchantId + "RF1" + accepted.RefundID + tranID + "10.50" + "00" + secretKey));

    const status = (await (await sandbox.request(
      `/RMS/API/refundAPI/q_by_refID.php?${new URLSearchParams({ RefID: "RF1", MerchantID: merchantId, Signature: md5("RF1" + merchantId + verifyKey) })}`,
    )).json()) as Record<string, string>;
    expect(status).toMatchObject({ RefID: "RF1", Status: "success" });
    const wrong = (await (await sandbox.request(
      `/RMS/API/refundAPI/q_by_refID.php?${new URLSearchParams({ RefID: "RF1", MerchantID: merchantId, Signature: md5("RF1" + merchantId + secretKey) })}`,
    )).json()) as Record<string, string>;
    expect(wrong.error_code).toBe("PR003");
  });

  it("a rejected refund frees its amount again", async () => {
    const { sandbox } = setup();
    const { tranID } = await pay(sandbox, "approve");
    await refund(sandbox, refundRequest(tranID, "RF1", "10.50"));
    expect((await refund(sandbox, refundRequest(tranID, "RF2", "0.01"))).error_code).toBe("PR006");
    await postJson(sandbox, "/_control/refunds/RF1", { status: "11" });
    expect((await refund(sandbox, refundRequest(tranID, "RF2", "10.50"))).Status).toBe("22");
  });
});

describe("Fiuu sandbox: fault injection", () => {
  it("takes the server APIs down, slows them, and brings them back", async () => {
    const { sandbox } = setup();
    const query = { amount: "1.00", oID: "X1", domain: merchantId, skey: md5("X1" + merchantId + verifyKey + "1.00"), type: "2" };
    expect((await postJson(sandbox, "/_control/faults", { mode: "down" })).status).toBe(200);
    expect((await post(sandbox, "/RMS/query/q_by_oid.php", query)).status).toBe(503);
    expect((await post(sandbox, "/RMS/API/refundAPI/index.php", {})).status).toBe(503);
    // The hosted page is not a server API and stays up.
    expect((await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm())).status).toBe(200);

    await postJson(sandbox, "/_control/faults", { mode: "error" });
    expect((await post(sandbox, "/RMS/API/chkstat/returnipn.php", { treq: "1" })).status).toBe(500);

    await postJson(sandbox, "/_control/faults", { mode: "slow", delayMs: 150 });
    const started = performance.now();
    expect((await post(sandbox, "/RMS/query/q_by_oid.php", query)).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);

    await postJson(sandbox, "/_control/faults", { mode: "none" });
    expect((await post(sandbox, "/RMS/query/q_by_oid.php", query)).status).toBe(200);
    expect((await postJson(sandbox, "/_control/faults", { mode: "sideways" })).status).toBe(400);
  });
});
