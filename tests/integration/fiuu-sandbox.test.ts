import { createHash } from "node:crypto";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import type { Config } from "../../lib/core/config.js";
import { createFiuuSandbox, type FiuuSandboxOptions } from "../../lib/adapters/fiuu/sandbox/index.js";
import { localFiuuSandbox } from "../../lib/adapters/fiuu/sandbox/mount.js";
import { verifySkey } from "../../lib/adapters/fiuu/signatures.js";

// Every expected signature here is recomputed with node:crypto from FIUU.md's formulas, and every
// expected code and wording is written out from Fiuu's spec (v13.86), so neither a wrong formula in
// lib/adapters/fiuu nor a wrong table in the sandbox can make its own test pass.
const md5 = (text: string) => createHash("md5").update(text, "utf8").digest("hex");

const merchantId = "SB_testshop";
const verifyKey = "vk_0123456789abcdef";
const secretKey = "sk_fedcba9876543210";
const shop = "https://shop.example";

interface Received {
  path: string;
  contentType: string;
  raw: string;
  fields: Record<string, string>;
}

/** The merchant's server as the sandbox reaches it: records every POST, answers like a good merchant. */
function fakeMerchant(options: { hang?: boolean; fail?: boolean } = {}) {
  const received: Received[] = [];
  const app = new Hono();
  const record = async (path: string, request: Request) => {
    const contentType = request.headers.get("content-type") ?? "";
    const raw = await request.text();
    const fields: Record<string, string> = {};
    if (contentType.includes("application/x-www-form-urlencoded")) for (const [name, value] of new URLSearchParams(raw)) fields[name] = value;
    received.push({ path, contentType, raw, fields });
    if (options.hang) await new Promise(() => {});
  };
  app.post("/fiuu/notify", async (c) => {
    await record("/fiuu/notify", c.req.raw);
    return c.text("OK");
  });
  app.post("/fiuu/callback", async (c) => {
    await record("/fiuu/callback", c.req.raw);
    return c.text("CBTOKEN:MPSTATOK");
  });
  app.post("/fiuu/refund", async (c) => {
    await record("/fiuu/refund", c.req.raw);
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

async function post(sandbox: Sandbox, path: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return sandbox.request(path, { method: "POST", body: new URLSearchParams(fields), headers });
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

/** The same payment as Fiuu's seamless script sends it: mps* names, signed by mpsvcode. */
function seamlessForm(overrides: Record<string, string> = {}): Record<string, string> {
  const form: Record<string, string> = {
    mpsmerchantid: merchantId,
    mpsamount: "25.00",
    mpsorderid: "SEAM20240101",
    mpsbill_name: "Ahmad Faiz",
    mpsbill_email: "ahmad@example.my",
    mpsbill_mobile: "0127788990",
    mpsbill_desc: "Seamless order",
    mpscurrency: "MYR",
    mpscountry: "MY",
    mpschannel: "credit",
    mpslangcode: "en",
    mpsreturnurl: `${shop}/fiuu/return`,
    ...overrides,
  };
  if (!("mpsvcode" in overrides) && !("vcode" in overrides)) form.mpsvcode = md5(form.mpsamount! + merchantId + form.mpsorderid! + verifyKey);
  return form;
}

function decodeHtml(text: string): string {
  return text
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
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

/** The names of a flat JSON object's members, in the order the raw text writes them. */
function jsonKeys(raw: string): string[] {
  return Object.keys(JSON.parse(raw) as Record<string, unknown>);
}

/** The raw text of one member's value in a flat JSON object (`30.00`, `"30.00"`, `null`). */
function rawMember(raw: string, name: string): string | undefined {
  return new RegExp(`"${name}"\\s*:\\s*("(?:[^"\\\\]|\\\\.)*"|[^,}\\]]+)`).exec(raw)?.[1]?.trim();
}

/** Text lines `Key<separator>Value` as Fiuu's type=0 requery answers write them, in order. */
function textLines(body: string, separator: "=" | ": "): Array<[string, string]> {
  return body
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const at = line.indexOf(separator);
      if (at < 0) throw new Error(`line without "${separator}": ${line}`);
      return [line.slice(0, at), line.slice(at + separator.length)] as [string, string];
    });
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

  it("refuses an unsupported currency with P13 and a malformed orderid with P19", async () => {
    const { sandbox } = setup();
    const currency = await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm({ currency: "XYZ" }));
    expect(currency.status).toBe(400);
    expect(await currency.text()).toContain("P13");
    const orderid = await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm({ orderid: "ORD-2024/01" }));
    expect(orderid.status).toBe(400);
    expect(await orderid.text()).toContain("P19");
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
    expect(stored[0]).toMatchObject({ tranID, orderid: "ORD20240101A", amount: "10.50", status: "awaiting", seamless: false, guestCheckout: false });
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
    const result = await parent.request(action, {
      method: "POST",
      body: new URLSearchParams({ tranID: hiddenInputs(html).tranID!, outcome: "approve" }),
    });
    expect(result.status).toBe(200);
    expect(merchant.on("/fiuu/notify")).toHaveLength(1);
  });
});

describe("Fiuu sandbox: seamless requests", () => {
  it("reads a seamless form under its mps* names, signed by mpsvcode", async () => {
    const { sandbox } = setup();
    const response = await post(sandbox, `/RMS/pay/${merchantId}/`, seamlessForm());
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain("MYR 25.00");
    expect(html).toContain("SEAM20240101");
    const stored = await storedTransactions(sandbox);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({
      orderid: "SEAM20240101",
      amount: "25.00",
      currency: "MYR",
      requestedChannel: "credit",
      billName: "Ahmad Faiz",
      billEmail: "ahmad@example.my",
      billMobile: "0127788990",
      billDesc: "Seamless order",
      returnUrl: `${shop}/fiuu/return`,
      seamless: true,
    });
  });

  it("refuses a seamless form signed only by a vcode field with P03: that name is not read there", async () => {
    const { sandbox } = setup();
    const form = seamlessForm({ vcode: md5(`25.00${merchantId}SEAM20240101${verifyKey}`) });
    expect(form.mpsvcode).toBeUndefined();
    const response = await post(sandbox, `/RMS/pay/${merchantId}/`, form);
    expect(response.status).toBe(400);
    const html = await response.text();
    expect(html).toContain("P03");
    expect(html).toContain("mpsvcode");
    expect(await storedTransactions(sandbox)).toEqual([]);
  });

  it("refuses a seamless form whose mpsvcode does not match with P03", async () => {
    const { sandbox } = setup();
    const response = await post(sandbox, `/RMS/pay/${merchantId}/`, seamlessForm({ mpsvcode: md5(`25.00${merchantId}SEAM20240101wrong`) }));
    expect(response.status).toBe(400);
    expect(await response.text()).toContain("P03");
    expect(await storedTransactions(sandbox)).toEqual([]);
  });

  it("refuses a seamless form for another merchant", async () => {
    const { sandbox } = setup();
    const response = await post(sandbox, `/RMS/pay/${merchantId}/`, seamlessForm({ mpsmerchantid: "SB_other" }));
    expect(response.status).toBe(404);
  });
});

describe("Fiuu sandbox: buyer information (P04)", () => {
  it.each([
    ["missing", undefined],
    ["empty", ""],
    ["the spec's fake 0123456789", "0123456789"],
    ["a fake with the country code", "+60123456789"],
    ["one digit repeated", "1111111111"],
    ["a descending run", "9876543210"],
    ["too short", "01234"],
  ])("refuses a bill_mobile that is %s with P04 and stores nothing", async (_label, mobile) => {
    const { sandbox } = setup();
    const form = paymentForm();
    if (mobile === undefined) delete form.bill_mobile;
    else form.bill_mobile = mobile;
    const response = await post(sandbox, `/RMS/pay/${merchantId}/`, form);
    expect(response.status).toBe(400);
    const html = await response.text();
    expect(html).toContain("P04");
    expect(html).toMatch(/incomplete buyer information/i);
    expect(await storedTransactions(sandbox)).toEqual([]);
  });

  it("refuses a missing bill_name or an invalid bill_email with P04", async () => {
    const { sandbox } = setup();
    const noName = paymentForm();
    delete noName.bill_name;
    expect(await (await post(sandbox, `/RMS/pay/${merchantId}/`, noName)).text()).toContain("P04");
    expect(await (await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm({ bill_email: "not-an-email" }))).text()).toContain("P04");
  });

  it("accepts a payment without buyer details when guest_checkout=1", async () => {
    const { sandbox } = setup();
    const form = paymentForm({ guest_checkout: "1" });
    delete form.bill_name;
    delete form.bill_email;
    delete form.bill_mobile;
    const response = await post(sandbox, `/RMS/pay/${merchantId}/`, form);
    expect(response.status).toBe(200);
    expect((await storedTransactions(sandbox))[0]).toMatchObject({ guestCheckout: true, billMobile: "" });
  });

  it("refuses a seamless form without mpsbill_mobile with P04, and accepts it with mpsguest_checkout=1", async () => {
    const { sandbox } = setup();
    const without = seamlessForm();
    delete without.mpsbill_mobile;
    const refused = await post(sandbox, `/RMS/pay/${merchantId}/`, without);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain("P04");
    // guest_checkout under its hosted-page name is not a seamless field: still refused.
    expect(await (await post(sandbox, `/RMS/pay/${merchantId}/`, { ...without, guest_checkout: "1" })).text()).toContain("P04");
    const guest = await post(sandbox, `/RMS/pay/${merchantId}/`, { ...without, mpsguest_checkout: "1" });
    expect(guest.status).toBe(200);
    expect((await storedTransactions(sandbox))[0]).toMatchObject({ seamless: true, guestCheckout: true });
  });
});

describe("Fiuu sandbox: reports", () => {
  it("approve: notification and callback arrive signed, with the form's amount string, then the browser goes back", async () => {
    const { sandbox, merchant } = setup();
    const { tranID, result, returnHtml } = await pay(sandbox, "approve");
    expect(result.status).toBe(200);

    const [notification] = merchant.on("/fiuu/notify");
    const [callback] = merchant.on("/fiuu/callback");
    expect(notification?.contentType).toMatch(/application\/x-www-form-urlencoded/);
    expect(notification?.fields.nbcb).toBe("2");
    expect(callback?.fields.nbcb).toBe("1");
    for (const report of [notification!.fields, callback!.fields]) {
      expect(report).toMatchObject({
        tranID,
        orderid: "ORD20240101A",
        status: "00",
        domain: merchantId,
        amount: "10.50",
        currency: "MYR",
        channel: "maybank2u",
      });
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
        expect.objectContaining({ kind: "notification", url: `${shop}/fiuu/notify`, status: 200, body: "OK", encoding: "form" }),
        expect.objectContaining({ kind: "callback", url: `${shop}/fiuu/callback`, status: 200, body: "CBTOKEN:MPSTATOK", encoding: "form" }),
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
    const log = (await (await sandbox.request("/_control/log")).json()) as {
      ipnEchoes: Array<{ fields: Record<string, string>; problems: string[] }>;
    };
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

const byOrder = (oID: string, amount: string, type?: string) => ({
  amount,
  oID,
  domain: merchantId,
  skey: md5(oID + merchantId + verifyKey + amount),
  ...(type === undefined ? {} : { type }),
});
const byTran = (txID: string, amount: string, type?: string) => ({
  amount,
  txID,
  domain: merchantId,
  skey: md5(txID + merchantId + verifyKey + amount),
  ...(type === undefined ? {} : { type }),
});
const gateQuery = "/RMS/API/gate-query/index.php";
const qByTid = "/RMS/q_by_tid.php";
const qByOid = "/RMS/query/q_by_oid.php";

describe("Fiuu sandbox: requery answers", () => {
  // The query window is tested on its own below; here every query is answered.
  const open = (overrides: Partial<FiuuSandboxOptions> = {}) => setup({ queryWindowMs: 0, ...overrides });

  it("q_by_oid type=2: JSON with Amount a number with two decimals, VrfKey over the OrderID, empty errors null", async () => {
    const { sandbox } = open();
    const { tranID } = await pay(sandbox, "approve");
    const response = await post(sandbox, qByOid, byOrder("ORD20240101A", "10.50", "2"));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/application\/json/);
    const raw = await response.text();
    expect(raw).toContain('"Amount":10.50');
    expect(jsonKeys(raw)).toEqual([
      "StatCode",
      "StatName",
      "OrderID",
      "Amount",
      "TranID",
      "Domain",
      "BillingDate",
      "BillingName",
      "VrfKey",
      "Channel",
      "Currency",
      "ErrorCode",
      "ErrorDesc",
    ]);
    const answer = JSON.parse(raw) as Record<string, unknown>;
    expect(answer).toMatchObject({
      StatCode: "00",
      StatName: "captured",
      OrderID: "ORD20240101A",
      TranID: tranID,
      Domain: merchantId,
      BillingName: "Siti Aminah",
      Channel: "maybank2u",
      Currency: "MYR",
      ErrorCode: null,
      ErrorDesc: null,
    });
    expect(answer.BillingDate).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(answer.VrfKey).toBe(md5(`10.50${secretKey}${merchantId}ORD20240101A00`));
  });

  it("q_by_oid type=0 (and no type): plain text `Key: Value` lines, also on GET", async () => {
    const { sandbox } = open();
    const { tranID } = await pay(sandbox, "decline");
    for (const response of [
      await sandbox.request(`${qByOid}?${new URLSearchParams(byOrder("ORD20240101A", "10.50", "0"))}`),
      await post(sandbox, qByOid, byOrder("ORD20240101A", "10.50")),
    ]) {
      expect(response.headers.get("content-type")).toMatch(/text\/plain/);
      const lines = textLines(await response.text(), ": ");
      expect(lines.map(([name]) => name)).toEqual([
        "StatCode",
        "StatName",
        "OrderID",
        "Amount",
        "TranID",
        "Domain",
        "BillingDate",
        "BillingName",
        "VrfKey",
        "Channel",
        "Currency",
        "ErrorCode",
        "ErrorDesc",
      ]);
      const answer = Object.fromEntries(lines);
      expect(answer).toMatchObject({ StatCode: "11", StatName: "failed", OrderID: "ORD20240101A", Amount: "10.50", TranID: tranID });
      expect(answer.ErrorCode).toBeTruthy();
      expect(answer.VrfKey).toBe(md5(`10.50${secretKey}${merchantId}ORD20240101A11`));
    }
  });

  it("gate-query type=0: plain text `Key=Value` lines, no OrderID, VrfKey over the TranID", async () => {
    const { sandbox } = open();
    const { tranID } = await pay(sandbox, "approve");
    const response = await post(sandbox, gateQuery, byTran(tranID, "10.50", "0"));
    const lines = textLines(await response.text(), "=");
    expect(lines.map(([name]) => name)).toEqual([
      "StatCode",
      "StatName",
      "TranID",
      "Amount",
      "Domain",
      "Channel",
      "VrfKey",
      "Currency",
      "ErrorCode",
      "ErrorDesc",
    ]);
    const answer = Object.fromEntries(lines);
    expect(answer).toMatchObject({
      StatCode: "00",
      TranID: tranID,
      Amount: "10.50",
      Domain: merchantId,
      Channel: "maybank2u",
      Currency: "MYR",
      ErrorCode: "",
      ErrorDesc: "",
    });
    expect(answer.VrfKey).toBe(md5(`10.50${secretKey}${merchantId}${tranID}00`));
  });

  it("q_by_tid type=0: plain text `Key: Value` lines with OrderID, VrfKey over the TranID", async () => {
    const { sandbox } = open();
    const { tranID } = await pay(sandbox, "pending");
    const response = await post(sandbox, qByTid, byTran(tranID, "10.50"));
    const lines = textLines(await response.text(), ": ");
    expect(lines.map(([name]) => name)).toEqual([
      "StatCode",
      "StatName",
      "TranID",
      "Amount",
      "Domain",
      "VrfKey",
      "Channel",
      "OrderID",
      "Currency",
      "ErrorCode",
      "ErrorDesc",
    ]);
    const answer = Object.fromEntries(lines);
    expect(answer).toMatchObject({ StatCode: "22", StatName: "pending", TranID: tranID, OrderID: "ORD20240101A" });
    expect(answer.VrfKey).toBe(md5(`10.50${secretKey}${merchantId}${tranID}22`));
  });

  it.each([gateQuery, qByTid, "/MOLPay/q_by_tid.php"])("%s type=2: JSON, Amount a number, VrfKey over the TranID", async (path) => {
    const { sandbox } = open();
    const { tranID } = await pay(sandbox, "approve");
    const raw = await (await post(sandbox, path, byTran(tranID, "10.50", "2"))).text();
    expect(rawMember(raw, "Amount")).toBe("10.50");
    const answer = JSON.parse(raw) as Record<string, unknown>;
    expect(answer.StatCode).toBe("00");
    expect(answer.TranID).toBe(tranID);
    expect(answer.OrderID).toBe(path === gateQuery ? undefined : "ORD20240101A");
    expect(answer.ErrorCode).toBeNull();
    expect(answer.VrfKey).toBe(md5(`10.50${secretKey}${merchantId}${tranID}00`));
  });

  it("answers a payment the shopper has not finished as pending (22)", async () => {
    const { sandbox } = open();
    const page = await (await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm())).text();
    const tranID = hiddenInputs(page).tranID!;
    const answer = JSON.parse(await (await post(sandbox, qByTid, byTran(tranID, "10.50", "2"))).text()) as Record<string, string>;
    expect(answer.StatCode).toBe("22");
    expect(answer.VrfKey).toBe(md5(`10.50${secretKey}${merchantId}${tranID}22`));
  });

  it("writes the amount with two decimals for a payment asked for as an integer, and signs that text", async () => {
    const { sandbox } = open();
    const { tranID } = await pay(sandbox, "approve", { amount: "3899" });
    const text = Object.fromEntries(textLines(await (await post(sandbox, gateQuery, byTran(tranID, "3899"))).text(), "="));
    expect(text.Amount).toBe("3899.00");
    expect(text.VrfKey).toBe(md5(`3899.00${secretKey}${merchantId}${tranID}00`));
    const raw = await (await post(sandbox, qByOid, byOrder("ORD20240101A", "3899.00", "2"))).text();
    expect(raw).toContain('"Amount":3899.00');
    expect(rawMember(raw, "VrfKey")).toBe(`"${md5(`3899.00${secretKey}${merchantId}ORD20240101A00`)}"`);
  });

  it("writes Amount as a string with requeryJsonAmount: string", async () => {
    const { sandbox } = open({ requeryJsonAmount: "string" });
    await pay(sandbox, "approve");
    expect(await (await post(sandbox, qByOid, byOrder("ORD20240101A", "10.50", "2"))).text()).toContain('"Amount":"10.50"');
  });
});

describe("Fiuu sandbox: requery refusals", () => {
  const open = (overrides: Partial<FiuuSandboxOptions> = {}) => setup({ queryWindowMs: 0, ...overrides });
  const json = async (response: Response) => JSON.parse(await response.text()) as Record<string, unknown>;

  it("answers an unknown order on q_by_oid with ErrorCode Q203 alone: no StatCode, no VrfKey", async () => {
    const { sandbox } = open();
    expect(await json(await post(sandbox, qByOid, byOrder("NOSUCHORDER", "10.00", "2")))).toEqual({
      ErrorCode: "Q203",
      ErrorDesc: "Transaction record not found",
    });
    const text = await (await post(sandbox, qByOid, byOrder("NOSUCHORDER", "10.00", "0"))).text();
    expect(text).toBe("ErrorCode: Q203\nErrorDesc: Transaction record not found\n");
  });

  it("answers an unknown order as a record of dashes with requeryNotFound: dashes", async () => {
    const { sandbox } = open({ requeryNotFound: "dashes" });
    const answer = await json(await post(sandbox, qByOid, byOrder("NOSUCHORDER", "10.00", "2")));
    expect(answer).toMatchObject({ StatCode: "-", OrderID: "NOSUCHORDER", TranID: "-", Amount: "-", VrfKey: "-", ErrorCode: "-" });
  });

  it("answers an unknown tranID with Q203 on q_by_tid and Q00005 on gate-query", async () => {
    const { sandbox } = open();
    expect(await json(await post(sandbox, qByTid, byTran("1234567890", "10.00", "2")))).toEqual({
      ErrorCode: "Q203",
      ErrorDesc: "Transaction record not found",
    });
    expect(await (await post(sandbox, qByTid, byTran("1234567890", "10.00"))).text()).toBe(
      "ErrorCode: Q203\nErrorDesc: Transaction record not found\n",
    );
    expect(await (await post(sandbox, gateQuery, byTran("1234567890", "10.00"))).text()).toBe(
      "ErrorCode=Q00005\nErrorDesc=Transaction record not found\n",
    );
    expect(await json(await post(sandbox, gateQuery, byTran("1234567890", "10.00", "2")))).toEqual({
      ErrorCode: "Q00005",
      ErrorDesc: "Transaction record not found",
    });
  });

  it("answers a known payment asked for with another amount with Q204 (Q00004 on gate-query)", async () => {
    const { sandbox } = open();
    const { tranID } = await pay(sandbox, "approve");
    expect(await json(await post(sandbox, qByOid, byOrder("ORD20240101A", "10.00", "2")))).toEqual({
      ErrorCode: "Q204",
      ErrorDesc: "Incorrect amount",
    });
    expect(await json(await post(sandbox, qByTid, byTran(tranID, "10.00", "2")))).toEqual({ ErrorCode: "Q204", ErrorDesc: "Incorrect amount" });
    expect(await json(await post(sandbox, gateQuery, byTran(tranID, "10.00", "2")))).toEqual({
      ErrorCode: "Q00004",
      ErrorDesc: "Correct skey with invalid data",
    });
  });

  it("refuses a wrong request skey with each endpoint's code: Q202, Q102, Q00004", async () => {
    const { sandbox } = open();
    const { tranID } = await pay(sandbox, "approve");
    const wrongOrder = { ...byOrder("ORD20240101A", "10.50", "2"), skey: md5(`ORD20240101A${merchantId}wrong10.50`) };
    const wrongTran = { ...byTran(tranID, "10.50", "2"), skey: md5(`${tranID + merchantId}wrong10.50`) };
    expect(await json(await post(sandbox, qByOid, wrongOrder))).toEqual({ ErrorCode: "Q202", ErrorDesc: "Incorrect skey" });
    expect(await json(await post(sandbox, qByTid, wrongTran))).toEqual({ ErrorCode: "Q102", ErrorDesc: "Incorrect skey" });
    expect(await json(await post(sandbox, gateQuery, wrongTran))).toEqual({ ErrorCode: "Q00004", ErrorDesc: "Incorrect skey" });
  });

  it("refuses a missing parameter with Q01 (Q00001 on gate-query), naming it", async () => {
    const { sandbox } = open();
    const { skey: _skey, ...noSkey } = byOrder("ORD1", "10.00", "2");
    expect(await json(await post(sandbox, qByOid, noSkey))).toEqual({ ErrorCode: "Q01", ErrorDesc: "Missing Required Parameter (skey)." });
    const { txID: _txID, ...noTxID } = byTran("1234567890", "10.00", "2");
    expect(await json(await post(sandbox, qByTid, noTxID))).toEqual({ ErrorCode: "Q01", ErrorDesc: "Missing Required Parameter (txID)." });
    expect(await json(await post(sandbox, gateQuery, noTxID))).toEqual({ ErrorCode: "Q00001", ErrorDesc: "Missing Required Parameter (txID)." });
  });

  it("refuses another merchant with Q04 (Q00003 on gate-query)", async () => {
    const { sandbox } = open();
    const other = (fields: Record<string, string>, id: string) => ({
      ...fields,
      domain: "SB_other",
      skey: md5(`${id}SB_other${verifyKey}10.00`),
    });
    expect(await json(await post(sandbox, qByOid, other(byOrder("ORD1", "10.00", "2"), "ORD1")))).toEqual({
      ErrorCode: "Q04",
      ErrorDesc: "Merchant info not found.",
    });
    expect(await json(await post(sandbox, qByTid, other(byTran("1234567890", "10.00", "2"), "1234567890")))).toEqual({
      ErrorCode: "Q04",
      ErrorDesc: "Merchant info not found.",
    });
    expect(await json(await post(sandbox, gateQuery, other(byTran("1234567890", "10.00", "2"), "1234567890")))).toEqual({
      ErrorCode: "Q00003",
      ErrorDesc: "Merchant info not found.",
    });
  });

  it("refuses an amount that is not a number with Q02, naming it", async () => {
    const { sandbox } = open();
    expect(await json(await post(sandbox, qByOid, byOrder("ORD1", "ten", "2")))).toEqual({
      ErrorCode: "Q02",
      ErrorDesc: "Invalid Parameter Value (amount).",
    });
  });

  it("answers Q99 to a second query from the same merchant within 5 s, by default, on any endpoint", async () => {
    let now = new Date("2024-03-01T00:00:00Z");
    const { sandbox } = setup({ now: () => now });
    const first = await post(sandbox, qByOid, byOrder("NOSUCHORDER", "10.00", "2"));
    expect((await json(first)).ErrorCode).toBe("Q203");
    const q99 = "Service blocked due to massive connection. Please send only 1 request every 5 minutes.";
    expect(await json(await post(sandbox, qByOid, byOrder("NOSUCHORDER", "10.00", "2")))).toEqual({ ErrorCode: "Q99", ErrorDesc: q99 });
    expect(await (await post(sandbox, qByTid, byTran("1234567890", "10.00"))).text()).toBe(`ErrorCode: Q99\nErrorDesc: ${q99}\n`);
    expect(await (await post(sandbox, gateQuery, byTran("1234567890", "10.00"))).text()).toBe(`ErrorCode=Q99\nErrorDesc=${q99}\n`);
    now = new Date(now.getTime() + 4_999);
    expect((await json(await post(sandbox, qByOid, byOrder("NOSUCHORDER", "10.00", "2")))).ErrorCode).toBe("Q99");
    now = new Date(now.getTime() + 1);
    expect((await json(await post(sandbox, qByOid, byOrder("NOSUCHORDER", "10.00", "2")))).ErrorCode).toBe("Q203");
    // Another merchant has its own window.
    const otherSkey = md5(`X1SB_other${verifyKey}1.00`);
    expect((await json(await post(sandbox, qByOid, { amount: "1.00", oID: "X1", domain: "SB_other", skey: otherSkey, type: "2" }))).ErrorCode).toBe(
      "Q04",
    );
  });

  it("takes the window from queryWindowMs, and turns it off with 0 or enforceQueryRate: false", async () => {
    let now = new Date("2024-03-01T00:00:00Z");
    const { sandbox } = setup({ now: () => now, queryWindowMs: 1_000 });
    const query = async (s: Sandbox) => (await json(await post(s, qByOid, byOrder("NOSUCHORDER", "10.00", "2")))).ErrorCode;
    expect(await query(sandbox)).toBe("Q203");
    expect(await query(sandbox)).toBe("Q99");
    now = new Date(now.getTime() + 1_000);
    expect(await query(sandbox)).toBe("Q203");
    for (const relaxed of [setup({ queryWindowMs: 0 }).sandbox, setup({ enforceQueryRate: false }).sandbox]) {
      for (let i = 0; i < 3; i++) expect(await query(relaxed)).toBe("Q203");
    }
  });

  it("mounted for the service, enforces the configured query interval when shorter than 5 s, else Fiuu's 5 s", async () => {
    const config = (queryIntervalMs: number) =>
      ({
        isProduction: false,
        publicUrl: "http://localhost:3000",
        fiuu: { localSandbox: true, merchantId, verifyKey, secretKey, extendedVcode: false, queryIntervalMs },
      }) as unknown as Config;
    const query = async (s: Hono) =>
      (await json(await s.request(qByOid, { method: "POST", body: new URLSearchParams(byOrder("NOSUCHORDER", "10.00", "2")) }))).ErrorCode;
    const fast = localFiuuSandbox(config(1))!(async () => new Response("OK"));
    expect(await query(fast)).toBe("Q203");
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await query(fast)).toBe("Q203");
    const slow = localFiuuSandbox(config(30_000))!(async () => new Response("OK"));
    expect(await query(slow)).toBe("Q203");
    expect(await query(slow)).toBe("Q99");
  });
});

// ---------------------------------------------------------------------------------------------
// Refunds

const bankFields = { BankCode: "MBB0228", BankCountry: "MY", BeneficiaryName: "Siti Aminah", BeneficiaryAccNo: "514012345678" };
const refundRequest = (txnId: string, refId: string, amount: string, extra: Record<string, string> = {}) => ({
  RefundType: "P",
  MerchantID: merchantId,
  RefID: refId,
  TxnID: txnId,
  Amount: amount,
  Signature: md5(`P${merchantId}${refId}${txnId}${amount}${secretKey}`),
  ...extra,
});
const refundPath = "/RMS/API/refundAPI/index.php";
const refundRaw = async (sandbox: Sandbox, fields: Record<string, string>, headers: Record<string, string> = {}) => {
  const response = await post(sandbox, refundPath, fields, headers);
  expect(response.status).toBe(200);
  return response.text();
};
const refund = async (sandbox: Sandbox, fields: Record<string, string>) => JSON.parse(await refundRaw(sandbox, fields)) as Record<string, unknown>;
const storedRefunds = async (sandbox: Sandbox) =>
  ((await (await sandbox.request("/_control/refunds")).json()) as { refunds: Array<Record<string, unknown>> }).refunds;
/** A paid card payment (the shopper chose on the page: card in the sandbox) and a paid FPX one. */
const paidByCard = (sandbox: Sandbox, orderid = "ORDCARD1") => pay(sandbox, "approve", { channel: "", orderid });
const paidByFpx = (sandbox: Sandbox, orderid = "ORDFPX1") => pay(sandbox, "approve", { channel: "FPX_MB2U", orderid });

describe("Fiuu sandbox: refund API", () => {
  it("accepts a refund as pending (22): RefundID and TxnID JSON numbers, Signature over the texts", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    const raw = await refundRaw(sandbox, refundRequest(tranID, "RF1", "5.00"));
    expect(jsonKeys(raw)).toEqual(["RefundType", "MerchantID", "RefID", "RefundID", "TxnID", "Amount", "Status", "Signature", "reason", "FPXTxnID"]);
    const refundId = rawMember(raw, "RefundID")!;
    expect(refundId).toMatch(/^[1-9][0-9]*$/);
    expect(rawMember(raw, "TxnID")).toBe(tranID);
    const answer = JSON.parse(raw) as Record<string, unknown>;
    expect(answer).toMatchObject({ RefundType: "P", MerchantID: merchantId, RefID: "RF1", Amount: "5.00", Status: "22", TxnID: Number(tranID) });
    expect(answer.Signature).toBe(md5(`P${merchantId}RF1${refundId}${tranID}5.0022${secretKey}`));
    expect(await storedRefunds(sandbox)).toEqual([
      expect.objectContaining({ refId: "RF1", refundId, txnId: tranID, amount: "5.00", state: "pending" }),
    ]);
  });

  it("accepts a refund of an FPX payment with the beneficiary's bank details, and records them", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByFpx(sandbox);
    const answer = await refund(sandbox, refundRequest(tranID, "RF1", "10.50", bankFields));
    expect(answer.Status).toBe("22");
    expect((await storedRefunds(sandbox))[0]).toMatchObject({
      refId: "RF1",
      bank: { bankCode: "MBB0228", bankCountry: "MY", beneficiaryName: "Siti Aminah", beneficiaryAccNo: "514012345678" },
    });
  });

  it.each([
    ["RefundType", "PR001", "Refund Type not found."],
    ["MerchantID", "PR002", "MerchantID field is mandatory."],
    ["RefID", "PR003", "RefID field is mandatory."],
    ["TxnID", "PR004", "TxnID field is mandatory"],
    ["Amount", "PR005", "Amount field is mandatory."],
    ["Signature", "PR006", "Signature field is mandatory"],
  ])("refuses a request without %s with %s", async (field, code, desc) => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    const fields: Record<string, string> = refundRequest(tranID, "RF1", "1.00");
    delete fields[field];
    expect(await refund(sandbox, fields)).toEqual({ error_code: code, error_desc: desc });
    expect(await storedRefunds(sandbox)).toEqual([]);
  });

  it("refuses a RefundType other than P with PR001", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    const fields = {
      ...refundRequest(tranID, "RF1", "1.00"),
      RefundType: "F",
      Signature: md5(`F${merchantId}RF1${tranID}1.00${secretKey}`),
    };
    expect(await refund(sandbox, fields)).toEqual({ error_code: "PR001", error_desc: "Refund Type not found." });
  });

  it("refuses another MerchantID with PR007 and a wrong Signature with PR008", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    const other = {
      ...refundRequest(tranID, "RF1", "1.00"),
      MerchantID: "SB_other",
      Signature: md5(`PSB_otherRF1${tranID}1.00${secretKey}`),
    };
    expect(await refund(sandbox, other)).toEqual({ error_code: "PR007", error_desc: "Merchant ID not found." });
    const wrongKey = { ...refundRequest(tranID, "RF1", "1.00"), Signature: md5(`P${merchantId}RF1${tranID}1.00${verifyKey}`) };
    expect(await refund(sandbox, wrongKey)).toEqual({ error_code: "PR008", error_desc: "Invalid Signature." });
    const tampered = { ...refundRequest(tranID, "RF1", "1.00"), Amount: "10.00" };
    expect(await refund(sandbox, tampered)).toEqual({ error_code: "PR008", error_desc: "Invalid Signature." });
    expect(await storedRefunds(sandbox)).toEqual([]);
  });

  it("refuses an unknown TxnID with PR009", async () => {
    const { sandbox } = setup();
    expect(await refund(sandbox, refundRequest("999999999999", "RF1", "1.00"))).toEqual({ error_code: "PR009", error_desc: "Txn ID not found." });
  });

  it("refuses a transaction that is not captured with PR010, naming its status", async () => {
    const { sandbox } = setup();
    const declined = await pay(sandbox, "decline", { channel: "", orderid: "ORDDECL" });
    expect(await refund(sandbox, refundRequest(declined.tranID, "RF1", "1.00"))).toEqual({
      error_code: "PR010",
      error_desc: "Transaction must be in authorized/captured/settled status. Current transaction is in failed status.",
    });
    const pending = await pay(sandbox, "pending", { channel: "", orderid: "ORDPEND" });
    expect((await refund(sandbox, refundRequest(pending.tranID, "RF2", "1.00"))).error_code).toBe("PR010");
    expect(await storedRefunds(sandbox)).toEqual([]);
  });

  it("refuses more than what is left of the payment with PR011; a rejected refund frees its amount", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    expect((await refund(sandbox, refundRequest(tranID, "RF1", "6.00"))).Status).toBe("22");
    expect(await refund(sandbox, refundRequest(tranID, "RF2", "4.51"))).toEqual({
      error_code: "PR011",
      error_desc: "Exceed refund amount for this transaction.",
    });
    expect((await refund(sandbox, refundRequest(tranID, "RF3", "4.50"))).Status).toBe("22");
    expect((await refund(sandbox, refundRequest(tranID, "RF4", "0.01"))).error_code).toBe("PR011");
    await postJson(sandbox, "/_control/refunds/RF1", { status: "11" });
    expect((await refund(sandbox, refundRequest(tranID, "RF5", "6.00"))).Status).toBe("22");
  });

  it("refuses bank details on a card payment with PR012", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    expect(await refund(sandbox, refundRequest(tranID, "RF1", "1.00", { BeneficiaryName: "Siti Aminah" }))).toEqual({
      error_code: "PR012",
      error_desc: "Bank information is not applicable for credit channel transaction.",
    });
    const credit = await pay(sandbox, "approve", { channel: "credit", orderid: "ORDCREDIT" });
    expect((await refund(sandbox, refundRequest(credit.tranID, "RF2", "1.00", bankFields))).error_code).toBe("PR012");
  });

  it.each(["BankCode", "BeneficiaryName", "BeneficiaryAccNo"])("refuses a non-card refund without %s with PR014", async (field) => {
    const { sandbox } = setup();
    const { tranID } = await paidByFpx(sandbox);
    const fields: Record<string, string> = refundRequest(tranID, "RF1", "1.00", bankFields);
    delete fields[field];
    expect(await refund(sandbox, fields)).toEqual({
      error_code: "PR014",
      error_desc: "Bank information is mandatory for non-credit channel transaction.",
    });
  });

  it("asks bank details for every non-card channel (e-wallet too) with PR014", async () => {
    const { sandbox } = setup();
    const { tranID } = await pay(sandbox, "approve", { channel: "TNG-EWALLET", orderid: "ORDTNG" });
    expect((await refund(sandbox, refundRequest(tranID, "RF1", "1.00"))).error_code).toBe("PR014");
    expect((await refund(sandbox, refundRequest(tranID, "RF2", "1.00", bankFields))).Status).toBe("22");
  });

  it("refuses an unknown BankCode (or a BankCountry other than MY) with PR013", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByFpx(sandbox);
    expect(await refund(sandbox, refundRequest(tranID, "RF1", "1.00", { ...bankFields, BankCode: "XXXX0000" }))).toEqual({
      error_code: "PR013",
      error_desc: "BankCode not found in our database, please contact support.",
    });
    expect((await refund(sandbox, refundRequest(tranID, "RF2", "1.00", { ...bankFields, BankCountry: "SG" }))).error_code).toBe("PR013");
    for (const [refId, code] of [
      ["RF3", "BCBB0235"],
      ["RF4", "PBB0233"],
      ["RF5", "HLB0224"],
      ["RF6", "RHB0218"],
      ["RF7", "AMBB0209"],
      ["RF8", "BIMB0340"],
    ]) {
      expect((await refund(sandbox, refundRequest(tranID, refId!, "1.00", { ...bankFields, BankCode: code! }))).Status).toBe("22");
    }
  });

  it("refuses a BeneficiaryName with other than letters, digits and spaces with PR018", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByFpx(sandbox);
    expect(await refund(sandbox, refundRequest(tranID, "RF1", "1.00", { ...bankFields, BeneficiaryName: "Siti & Sons Sdn. Bhd." }))).toEqual({
      error_code: "PR018",
      error_desc: "BeneficiaryName cannot contain non-alphanumeric characters.",
    });
    expect((await refund(sandbox, refundRequest(tranID, "RF2", "1.00", { ...bankFields, BeneficiaryName: "Siti Aminah 2" }))).Status).toBe("22");
  });

  it("refuses any reuse of a RefID with PR016, an identical retry included, and records one refund", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    const other = await paidByCard(sandbox, "ORDCARD2");
    const first = await refund(sandbox, refundRequest(tranID, "RF1", "1.00"));
    expect(first.Status).toBe("22");
    const duplicate = { error_code: "PR016", error_desc: "Duplicate RefID found, please provide a unique RefID." };
    expect(await refund(sandbox, refundRequest(tranID, "RF1", "1.00"))).toEqual(duplicate);
    expect(await refund(sandbox, refundRequest(tranID, "RF1", "2.00"))).toEqual(duplicate);
    expect(await refund(sandbox, refundRequest(other.tranID, "RF1", "1.00"))).toEqual(duplicate);
    expect(await storedRefunds(sandbox)).toHaveLength(1);
  });

  it("refuses a refund more than 180 days after the payment with PR017", async () => {
    let now = new Date("2024-01-01T00:00:00Z");
    const { sandbox } = setup({ now: () => now });
    const { tranID } = await paidByCard(sandbox);
    now = new Date(now.getTime() + 180 * 86_400_000);
    expect((await refund(sandbox, refundRequest(tranID, "RF1", "1.00"))).Status).toBe("22");
    now = new Date(now.getTime() + 1_000);
    expect(await refund(sandbox, refundRequest(tranID, "RF2", "1.00"))).toEqual({
      error_code: "PR017",
      error_desc: "Refund request for transaction that is out of the allowed period.",
    });
  });

  it("ages a transaction by control, so a test of the service can reach PR017", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    expect((await postJson(sandbox, `/_control/transactions/${tranID}/created`, { daysAgo: 181 })).status).toBe(200);
    expect((await refund(sandbox, refundRequest(tranID, "RF1", "1.00"))).error_code).toBe("PR017");
  });

  it("refuses an Amount that is not a positive 2-decimal amount with PR005", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    for (const [refId, amount] of [
      ["RF1", "1.5"],
      ["RF2", "0.00"],
      ["RF3", "1,000.00"],
    ]) {
      expect((await refund(sandbox, refundRequest(tranID, refId!, amount!))).error_code).toBe("PR005");
    }
  });

  it("records each refund request with its idempotency-key header", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    await refundRaw(sandbox, refundRequest(tranID, "RF1", "1.00"), { "idempotency-key": "RF1" });
    await refundRaw(sandbox, refundRequest(tranID, "RF2", "1.00"));
    const { requests } = (await (await sandbox.request("/_control/requests?operation=refund")).json()) as {
      requests: Array<Record<string, unknown>>;
    };
    expect(requests).toHaveLength(2);
    expect(requests[0]).toMatchObject({
      operation: "refund",
      method: "POST",
      path: refundPath,
      idempotencyKey: "RF1",
      outcome: "answered",
      status: 200,
    });
    expect(requests[0]!.fields).toEqual(refundRequest(tranID, "RF1", "1.00"));
    expect(requests[1]!.idempotencyKey).toBeNull();
    const log = (await (await sandbox.request("/_control/log")).json()) as { requests: unknown[] };
    expect(log.requests.length).toBeGreaterThanOrEqual(2);
  });
});

describe("Fiuu sandbox: refund status", () => {
  const byRefID = (refId: string, key = verifyKey) => ({ RefID: refId, MerchantID: merchantId, Signature: md5(refId + merchantId + key) });
  const byTxn = (txnId: string, key = verifyKey) => ({ TxnID: txnId, MerchantID: merchantId, Signature: md5(txnId + merchantId + key) });
  const status = async (sandbox: Sandbox, path: string, fields: Record<string, string>) => {
    const response = await post(sandbox, `/RMS/API/refundAPI/${path}`, fields);
    expect(response.status).toBe(200);
    return await response.text();
  };

  it("q_by_refID answers an array of one unsigned refund record, its Status a word", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    const accepted = await refundRaw(sandbox, refundRequest(tranID, "RF1", "5.00"));
    const raw = await status(sandbox, "q_by_refID.php", byRefID("RF1"));
    const answer = JSON.parse(raw) as Array<Record<string, unknown>>;
    expect(Array.isArray(answer)).toBe(true);
    expect(answer).toHaveLength(1);
    expect(Object.keys(answer[0]!)).toEqual(["TxnID", "RefID", "RefundID", "Status", "LastUpdate", "FPXTxnID"]);
    expect(answer[0]).toMatchObject({ TxnID: tranID, RefID: "RF1", RefundID: rawMember(accepted, "RefundID"), Status: "pending" });
    expect(answer[0]!.LastUpdate).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(raw).not.toContain("Signature");
  });

  it("q_by_txn lists every refund of the transaction", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    await refund(sandbox, refundRequest(tranID, "RF1", "1.00"));
    await refund(sandbox, refundRequest(tranID, "RF2", "2.00"));
    const answer = JSON.parse(await status(sandbox, "q_by_txn.php", byTxn(tranID))) as Array<Record<string, unknown>>;
    expect(answer.map((r) => r.RefID)).toEqual(["RF1", "RF2"]);
  });

  it("follows the refund: processing, success, rejected", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    await refund(sandbox, refundRequest(tranID, "RF1", "1.00"));
    await refund(sandbox, refundRequest(tranID, "RF2", "1.00"));
    const word = async (refId: string) =>
      (JSON.parse(await status(sandbox, "q_by_refID.php", byRefID(refId))) as Array<{ Status: string }>)[0]!.Status;
    await postJson(sandbox, "/_control/refunds/RF1", { status: "processing" });
    expect(await word("RF1")).toBe("processing");
    await postJson(sandbox, "/_control/refunds/RF1", { status: "00" });
    expect(await word("RF1")).toBe("success");
    await postJson(sandbox, "/_control/refunds/RF2", { status: "11" });
    expect(await word("RF2")).toBe("rejected");
  });

  it("answers an unknown RefID or a transaction without refunds with INQ006", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    const notFound = { error_code: "INQ006", error_desc: "Unable to find refund transaction." };
    expect(JSON.parse(await status(sandbox, "q_by_refID.php", byRefID("NOSUCHREF")))).toEqual(notFound);
    expect(JSON.parse(await status(sandbox, "q_by_txn.php", byTxn(tranID)))).toEqual(notFound);
    expect(JSON.parse(await status(sandbox, "q_by_txn.php", byTxn("999999999999")))).toEqual(notFound);
  });

  it("refuses missing fields with INQ011 / INQ001, INQ002, INQ003", async () => {
    const { sandbox } = setup();
    const without = (fields: Record<string, string>, name: string) => Object.fromEntries(Object.entries(fields).filter(([n]) => n !== name));
    expect(JSON.parse(await status(sandbox, "q_by_refID.php", without(byRefID("RF1"), "RefID")))).toEqual({
      error_code: "INQ011",
      error_desc: "RefID field is mandatory.",
    });
    expect(JSON.parse(await status(sandbox, "q_by_txn.php", without(byTxn("123"), "TxnID")))).toEqual({
      error_code: "INQ001",
      error_desc: "TxnID field is mandatory.",
    });
    expect(JSON.parse(await status(sandbox, "q_by_refID.php", without(byRefID("RF1"), "MerchantID")))).toEqual({
      error_code: "INQ002",
      error_desc: "MerchantID field is mandatory.",
    });
    expect(JSON.parse(await status(sandbox, "q_by_txn.php", without(byTxn("123"), "Signature")))).toEqual({
      error_code: "INQ003",
      error_desc: "Signature field is mandatory.",
    });
  });

  it("refuses another merchant with INQ004 and a wrong Signature (secret key instead of verify key) with INQ005", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    await refund(sandbox, refundRequest(tranID, "RF1", "1.00"));
    const other = { RefID: "RF1", MerchantID: "SB_other", Signature: md5(`RF1SB_other${verifyKey}`) };
    expect(JSON.parse(await status(sandbox, "q_by_refID.php", other))).toEqual({ error_code: "INQ004", error_desc: "Merchant ID not found." });
    expect(JSON.parse(await status(sandbox, "q_by_refID.php", byRefID("RF1", secretKey)))).toEqual({
      error_code: "INQ005",
      error_desc: "Invalid Signature.",
    });
    expect(JSON.parse(await status(sandbox, "q_by_txn.php", byTxn(tranID, secretKey)))).toEqual({
      error_code: "INQ005",
      error_desc: "Invalid Signature.",
    });
  });

  it("answers on GET too", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    await refund(sandbox, refundRequest(tranID, "RF1", "1.00"));
    const response = await sandbox.request(`/RMS/API/refundAPI/q_by_refID.php?${new URLSearchParams(byRefID("RF1"))}`);
    expect(JSON.parse(await response.text()) as unknown[]).toHaveLength(1);
  });
});

describe("Fiuu sandbox: refund notice", () => {
  const settle = (sandbox: Sandbox, refId: string, body: Record<string, unknown>) => postJson(sandbox, `/_control/refunds/${refId}`, body);

  it("posts JSON to notify_url when a refund succeeds: final Status 00, RefundID and TxnID numbers, signed over the code", async () => {
    const { sandbox, merchant } = setup();
    const { tranID } = await paidByCard(sandbox);
    const accepted = await refundRaw(sandbox, refundRequest(tranID, "RF1", "10.50", { notify_url: `${shop}/fiuu/refund` }));
    const refundId = rawMember(accepted, "RefundID")!;
    expect((await settle(sandbox, "RF1", { status: "00" })).status).toBe(200);
    const [notice] = merchant.on("/fiuu/refund");
    expect(notice?.contentType).toMatch(/^application\/json/);
    expect(jsonKeys(notice!.raw)).toEqual([
      "RefundType",
      "MerchantID",
      "RefID",
      "RefundID",
      "TxnID",
      "Amount",
      "Status",
      "Signature",
      "reason",
      "FPXTxnID",
    ]);
    expect(rawMember(notice!.raw, "RefundID")).toBe(refundId);
    expect(rawMember(notice!.raw, "TxnID")).toBe(tranID);
    expect(JSON.parse(notice!.raw)).toMatchObject({
      RefundType: "P",
      MerchantID: merchantId,
      RefID: "RF1",
      Amount: "10.50",
      Status: "00",
      reason: "",
    });
    expect(JSON.parse(notice!.raw).Signature).toBe(md5(`P${merchantId}RF1${refundId}${tranID}10.5000${secretKey}`));
    const log = (await (await sandbox.request("/_control/log")).json()) as { deliveries: Array<Record<string, unknown>> };
    expect(log.deliveries.find((d) => d.kind === "refund_notice")).toMatchObject({ encoding: "json", payload: notice!.raw, status: 200 });
  });

  it("posts Status 11 with a reason when a refund is rejected", async () => {
    const { sandbox, merchant } = setup();
    const { tranID } = await paidByCard(sandbox);
    const refundId = rawMember(await refundRaw(sandbox, refundRequest(tranID, "RF1", "1.00", { notify_url: `${shop}/fiuu/refund` })), "RefundID")!;
    await settle(sandbox, "RF1", { status: "11", reason: "Account closed" });
    const notice = JSON.parse(merchant.on("/fiuu/refund")[0]!.raw) as Record<string, string>;
    expect(notice).toMatchObject({ Status: "11", reason: "Account closed" });
    expect(notice.Signature).toBe(md5(`P${merchantId}RF1${refundId}${tranID}1.0011${secretKey}`));
  });

  it("with statusAs: word, says success/rejected in Status while the Signature stays over the code", async () => {
    const { sandbox, merchant } = setup();
    const { tranID } = await paidByCard(sandbox);
    const ids: Record<string, string> = {};
    for (const refId of ["RF1", "RF2"]) {
      ids[refId] = rawMember(await refundRaw(sandbox, refundRequest(tranID, refId, "1.00", { notify_url: `${shop}/fiuu/refund` })), "RefundID")!;
    }
    await settle(sandbox, "RF1", { status: "00", statusAs: "word" });
    await settle(sandbox, "RF2", { status: "11", statusAs: "word" });
    const [ok, rejected] = merchant.on("/fiuu/refund").map((r) => JSON.parse(r.raw) as Record<string, string>);
    expect(ok!.Status).toBe("success");
    expect(ok!.Signature).toBe(md5(`P${merchantId}RF1${ids.RF1}${tranID}1.0000${secretKey}`));
    expect(rejected!.Status).toBe("rejected");
    expect(rejected!.Signature).toBe(md5(`P${merchantId}RF2${ids.RF2}${tranID}1.0011${secretKey}`));
  });

  it("with encoding: form, posts the notice form-encoded", async () => {
    const { sandbox, merchant } = setup();
    const { tranID } = await paidByCard(sandbox);
    const refundId = rawMember(await refundRaw(sandbox, refundRequest(tranID, "RF1", "1.00", { notify_url: `${shop}/fiuu/refund` })), "RefundID")!;
    await settle(sandbox, "RF1", { status: "00", encoding: "form" });
    const [notice] = merchant.on("/fiuu/refund");
    expect(notice!.contentType).toMatch(/application\/x-www-form-urlencoded/);
    expect(notice!.fields).toMatchObject({ RefID: "RF1", RefundID: refundId, TxnID: tranID, Amount: "1.00", Status: "00" });
    expect(notice!.fields.Signature).toBe(md5(`P${merchantId}RF1${refundId}${tranID}1.0000${secretKey}`));
  });

  it("sends nothing for processing, nor without a notify_url, and settles a refund only once", async () => {
    const { sandbox, merchant } = setup();
    const { tranID } = await paidByCard(sandbox);
    await refund(sandbox, refundRequest(tranID, "RF1", "1.00", { notify_url: `${shop}/fiuu/refund` }));
    await refund(sandbox, refundRequest(tranID, "RF2", "1.00"));
    await settle(sandbox, "RF1", { status: "processing" });
    await settle(sandbox, "RF2", { status: "00" });
    expect(merchant.on("/fiuu/refund")).toHaveLength(0);
    expect((await settle(sandbox, "RF2", { status: "11" })).status).toBe(409);
    expect((await settle(sandbox, "NOSUCH", { status: "00" })).status).toBe(404);
  });
});

describe("Fiuu sandbox: controls for lost, dropped and refused requests", () => {
  const next = (sandbox: Sandbox, body: Record<string, unknown>) => postJson(sandbox, "/_control/next", body);

  it("lose_answer: the refund is recorded, the answer is a bodiless 504, and a retry gets PR016", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    expect((await next(sandbox, { operation: "refund", effect: "lose_answer" })).status).toBe(200);
    const lost = await post(sandbox, refundPath, refundRequest(tranID, "RF1", "1.00"));
    expect(lost.status).toBe(504);
    expect(await lost.text()).toBe("");
    expect(await storedRefunds(sandbox)).toEqual([expect.objectContaining({ refId: "RF1", state: "pending" })]);
    expect((await refund(sandbox, refundRequest(tranID, "RF1", "1.00"))).error_code).toBe("PR016");
    const found = JSON.parse(
      await (
        await post(sandbox, "/RMS/API/refundAPI/q_by_refID.php", {
          RefID: "RF1",
          MerchantID: merchantId,
          Signature: md5(`RF1${merchantId}${verifyKey}`),
        })
      ).text(),
    ) as unknown[];
    expect(found).toHaveLength(1);
    const { requests } = (await (await sandbox.request("/_control/requests?operation=refund")).json()) as {
      requests: Array<Record<string, unknown>>;
    };
    expect(requests.map((r) => r.outcome)).toEqual(["answer_lost", "answered"]);
    expect(requests[0]!.status).toBe(504);
  });

  it("drop: nothing is recorded, the answer is a bodiless 504, and the same request later succeeds", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    await next(sandbox, { operation: "refund", effect: "drop", count: 2 });
    for (let i = 0; i < 2; i++) {
      const dropped = await post(sandbox, refundPath, refundRequest(tranID, "RF1", "1.00"));
      expect(dropped.status).toBe(504);
      expect(await dropped.text()).toBe("");
    }
    expect(await storedRefunds(sandbox)).toEqual([]);
    const notFound = JSON.parse(
      await (
        await post(sandbox, "/RMS/API/refundAPI/q_by_refID.php", {
          RefID: "RF1",
          MerchantID: merchantId,
          Signature: md5(`RF1${merchantId}${verifyKey}`),
        })
      ).text(),
    );
    expect(notFound).toEqual({ error_code: "INQ006", error_desc: "Unable to find refund transaction." });
    expect((await refund(sandbox, refundRequest(tranID, "RF1", "1.00"))).Status).toBe("22");
  });

  it("error_code: the next refund answers PR015 unprocessed, then refunds work again", async () => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    await next(sandbox, { operation: "refund", effect: "error_code", code: "PR015" });
    expect(await refund(sandbox, refundRequest(tranID, "RF1", "1.00"))).toEqual({
      error_code: "PR015",
      error_desc: "Server is busy, try again later.",
    });
    expect(await storedRefunds(sandbox)).toEqual([]);
    expect((await refund(sandbox, refundRequest(tranID, "RF1", "1.00"))).Status).toBe("22");
  });

  it.each(["PR019", "PR020"])("error_code: answers %s with the spec's wording", async (code) => {
    const { sandbox } = setup();
    const { tranID } = await paidByCard(sandbox);
    await next(sandbox, { operation: "refund", effect: "error_code", code });
    const desc = {
      PR019: "Refund is not allowed / Only partial refund is allowed / Only full refund is allowed.",
      PR020: "Insufficient balance to refund.",
    }[code];
    expect(await refund(sandbox, refundRequest(tranID, "RF1", "1.00"))).toEqual({ error_code: code, error_desc: desc });
  });

  it("error_code: a requery answers Q03 in the endpoint's format, unprocessed and outside the query window", async () => {
    let now = new Date("2024-03-01T00:00:00Z");
    const { sandbox } = setup({ now: () => now });
    const { tranID } = await pay(sandbox, "approve");
    await next(sandbox, { operation: "requery", effect: "error_code", code: "Q03", count: 3 });
    const busy = "System is busy now, temporary out of services. Please try again later.";
    expect(await (await post(sandbox, qByTid, byTran(tranID, "10.50"))).text()).toBe(`ErrorCode: Q03\nErrorDesc: ${busy}\n`);
    expect(await (await post(sandbox, gateQuery, byTran(tranID, "10.50"))).text()).toBe(`ErrorCode=Q03\nErrorDesc=${busy}\n`);
    expect(JSON.parse(await (await post(sandbox, qByOid, byOrder("ORD20240101A", "10.50", "2"))).text())).toEqual({
      ErrorCode: "Q03",
      ErrorDesc: busy,
    });
    // None of them counted as a query: the next one is answered.
    expect(JSON.parse(await (await post(sandbox, qByTid, byTran(tranID, "10.50", "2"))).text()).StatCode).toBe("00");
    now = new Date(now.getTime() + 1);
    expect(JSON.parse(await (await post(sandbox, qByTid, byTran(tranID, "10.50", "2"))).text()).ErrorCode).toBe("Q99");
  });

  it("error_code: a refund status query answers an INQ code", async () => {
    const { sandbox } = setup();
    await next(sandbox, { operation: "refund_status", effect: "error_code", code: "INQ006" });
    const answer = JSON.parse(
      await (await post(sandbox, "/RMS/API/refundAPI/q_by_txn.php", { TxnID: "1", MerchantID: merchantId, Signature: "x" })).text(),
    );
    expect(answer).toEqual({ error_code: "INQ006", error_desc: "Unable to find refund transaction." });
  });

  it("lose_answer on requery counts the query; on echo the echo is recorded; `any` applies to the next request of any kind", async () => {
    let now = new Date("2024-03-01T00:00:00Z");
    const { sandbox, merchant } = setup({ now: () => now });
    const { tranID } = await pay(sandbox, "approve");
    await next(sandbox, { operation: "requery", effect: "lose_answer" });
    expect((await post(sandbox, qByTid, byTran(tranID, "10.50", "2"))).status).toBe(504);
    expect(JSON.parse(await (await post(sandbox, qByTid, byTran(tranID, "10.50", "2"))).text()).ErrorCode).toBe("Q99");

    await next(sandbox, { operation: "echo", effect: "lose_answer" });
    const notification = merchant.on("/fiuu/notify")[0]!.fields;
    expect((await post(sandbox, "/RMS/API/chkstat/returnipn.php", { ...notification, treq: "1" })).status).toBe(504);
    const log = (await (await sandbox.request("/_control/log")).json()) as { ipnEchoes: unknown[] };
    expect(log.ipnEchoes).toHaveLength(1);

    now = new Date(now.getTime() + 5_000);
    await next(sandbox, { operation: "any", effect: "drop" });
    expect((await post(sandbox, qByTid, byTran(tranID, "10.50", "2"))).status).toBe(504);
    // The dropped query never reached Fiuu's counter, and the drop is used up.
    expect(JSON.parse(await (await post(sandbox, qByTid, byTran(tranID, "10.50", "2"))).text()).StatCode).toBe("00");
    expect(((await (await sandbox.request("/_control/next")).json()) as { next: unknown[] }).next).toEqual([]);
  });

  it("lists and clears pending effects, and refuses effects it cannot apply", async () => {
    const { sandbox } = setup();
    await next(sandbox, { operation: "refund", effect: "drop", count: 5 });
    expect(((await (await sandbox.request("/_control/next")).json()) as { next: Array<Record<string, unknown>> }).next).toEqual([
      expect.objectContaining({ operation: "refund", effect: "drop", remaining: 5 }),
    ]);
    await sandbox.request("/_control/next", { method: "DELETE" });
    expect(((await (await sandbox.request("/_control/next")).json()) as { next: unknown[] }).next).toEqual([]);

    expect((await next(sandbox, { operation: "echo", effect: "error_code", code: "Q03" })).status).toBe(400);
    expect((await next(sandbox, { operation: "any", effect: "error_code", code: "PR015" })).status).toBe(400);
    expect((await next(sandbox, { operation: "requery", effect: "error_code", code: "PR015" })).status).toBe(400);
    expect((await next(sandbox, { operation: "refund", effect: "error_code" })).status).toBe(400);
    expect((await next(sandbox, { operation: "refund_status", effect: "error_code", code: "INQ007" })).status).toBe(400);
    expect((await next(sandbox, { operation: "refund_status", effect: "error_code", code: "INQ007", desc: "Something" })).status).toBe(200);
    expect((await next(sandbox, { operation: "refund", effect: "sideways" })).status).toBe(400);
    expect((await sandbox.request("/_control/requests?operation=nothing")).status).toBe(400);
  });

  it("records requests of each operation with method, path, fields and outcome", async () => {
    const { sandbox } = setup({ queryWindowMs: 0 });
    const { tranID } = await pay(sandbox, "approve");
    await sandbox.request(`${qByTid}?${new URLSearchParams(byTran(tranID, "10.50"))}`);
    await post(sandbox, "/RMS/API/refundAPI/q_by_txn.php", {
      TxnID: tranID,
      MerchantID: merchantId,
      Signature: md5(tranID + merchantId + verifyKey),
    });
    const requests = async (operation: string) =>
      ((await (await sandbox.request(`/_control/requests?operation=${operation}`)).json()) as { requests: Array<Record<string, unknown>> }).requests;
    expect(await requests("requery")).toEqual([
      expect.objectContaining({
        method: "GET",
        path: qByTid,
        fields: byTran(tranID, "10.50"),
        outcome: "answered",
        status: 200,
        idempotencyKey: null,
      }),
    ]);
    expect(await requests("refund_status")).toEqual([expect.objectContaining({ method: "POST", path: "/RMS/API/refundAPI/q_by_txn.php" })]);
    expect(await requests("refund")).toEqual([]);
  });
});

describe("Fiuu sandbox: fault injection", () => {
  it("takes the server APIs down, slows them, and brings them back", async () => {
    const { sandbox } = setup({ queryWindowMs: 0 });
    const query = { amount: "1.00", oID: "X1", domain: merchantId, skey: md5(`X1${merchantId}${verifyKey}1.00`), type: "2" };
    expect((await postJson(sandbox, "/_control/faults", { mode: "down" })).status).toBe(200);
    expect((await post(sandbox, qByOid, query)).status).toBe(503);
    expect((await post(sandbox, refundPath, {})).status).toBe(503);
    // The hosted page is not a server API and stays up.
    expect((await post(sandbox, `/RMS/pay/${merchantId}/`, paymentForm())).status).toBe(200);

    await postJson(sandbox, "/_control/faults", { mode: "error" });
    expect((await post(sandbox, "/RMS/API/chkstat/returnipn.php", { treq: "1" })).status).toBe(500);

    await postJson(sandbox, "/_control/faults", { mode: "slow", delayMs: 150 });
    const started = performance.now();
    expect((await post(sandbox, qByOid, query)).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);

    await postJson(sandbox, "/_control/faults", { mode: "none" });
    expect((await post(sandbox, qByOid, query)).status).toBe(200);
    expect((await postJson(sandbox, "/_control/faults", { mode: "sideways" })).status).toBe(400);

    const { requests } = (await (await sandbox.request("/_control/requests")).json()) as { requests: Array<{ outcome: string }> };
    expect(requests.map((r) => r.outcome)).toEqual(["down", "down", "error", "answered", "answered"]);
  });
});
