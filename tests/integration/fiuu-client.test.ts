import { createHash } from "node:crypto";
import { Hono } from "hono";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { Config } from "../../lib/config.js";
import { createFiuuClient, FiuuProtocolError, FiuuUnavailableError } from "../../lib/fiuu/client.js";
import { createFiuuSandbox, type FiuuSandboxOptions } from "../../lib/fiuu/sandbox/index.js";
import { createMetrics, type Metrics } from "../../lib/metrics.js";

// The client against the local sandbox, which plays Fiuu with real signatures. Every expected
// signature is recomputed here with node:crypto from FIUU.md, so a wrong formula in lib/fiuu cannot
// make its own test pass. Fake fetches in front of the sandbox tamper with answers or fail on purpose.

const md5 = (text: string) => createHash("md5").update(text, "utf8").digest("hex");

const merchantId = "SB_clientshop";
const verifyKey = "vk_client_0123456789";
const secretKey = "sk_client_9876543210";
const base = "http://fiuu.test/sandbox/fiuu";
const shop = "https://shop.example";

type Forward = (request: Request) => Promise<Response>;
type Intercept = (request: Request, forward: Forward) => Promise<Response>;

interface Sent {
  url: URL;
  form: Record<string, string>;
}

interface SetupOptions {
  fiuu?: Partial<Config["fiuu"]>;
  breaker?: { consecutiveFailures?: number; halfOpenAfterMs?: number };
  sandbox?: Partial<FiuuSandboxOptions>;
  intercept?: Intercept;
}

function setup(options: SetupOptions = {}) {
  const notifications: Array<Record<string, string>> = [];
  const sandbox = createFiuuSandbox({
    merchantId,
    verifyKey,
    secretKey,
    notifyUrl: `${shop}/fiuu/notify`,
    // The merchant's server as the sandbox reaches it: keeps what it is told, answers OK.
    fetch: async (request) => {
      if (new URL(request.url).pathname === "/fiuu/notify") notifications.push(Object.fromEntries(new URLSearchParams(await request.text())));
      return new Response("OK");
    },
    ...options.sandbox,
  });
  const app = new Hono();
  app.route("/sandbox/fiuu", sandbox);
  const forward: Forward = async (request) => app.fetch(request);

  // Every request the client makes passes here: counted, then handed to the interceptor or the sandbox.
  const sent: Sent[] = [];
  const hooks: { intercept?: Intercept } = { intercept: options.intercept };
  const fetch = async (request: Request) => {
    sent.push({ url: new URL(request.url), form: Object.fromEntries(new URLSearchParams(await request.clone().text())) });
    return hooks.intercept ? hooks.intercept(request, forward) : forward(request);
  };

  const metrics = createMetrics({ defaultMetrics: false });
  const logLines: string[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void logLines.push(line) });
  const fiuu: Config["fiuu"] = {
    merchantId,
    verifyKey,
    secretKey,
    sandbox: true,
    localSandbox: false,
    paymentUrl: base,
    apiUrl: base,
    extendedVcode: false,
    timeoutMs: 1_000,
    retryAttempts: 2,
    retryDelayMs: 5,
    queryIntervalMs: 5_000,
    breaker: { threshold: 5, resetMs: 30_000 },
    ...options.fiuu,
  };
  const client = createFiuuClient({ fiuu, metrics, logger, fetch, ...(options.breaker ? { breaker: options.breaker } : {}) });
  return { client, app, sent, hooks, notifications, metrics, logLines };
}

type App = ReturnType<typeof setup>["app"];

async function postForm(app: App, url: string, fields: Record<string, string>): Promise<Response> {
  return app.request(url, { method: "POST", body: new URLSearchParams(fields) });
}

async function setFault(app: App, mode: "none" | "down" | "slow" | "error", delayMs?: number): Promise<void> {
  const response = await app.request(`${base}/_control/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ mode, ...(delayMs === undefined ? {} : { delayMs }) }),
  });
  expect(response.status).toBe(200);
}

/** A shopper paying as a browser does: the signed form to the hosted page, then one of its buttons. */
async function pay(app: App, outcome: "approve" | "decline" | "pending", orderid: string, amount = "10.50") {
  const form = { amount, orderid, currency: "MYR", channel: "FPX_MB2U", bill_name: "Siti Aminah", bill_email: "siti@example.my", bill_mobile: "0191234567", bill_desc: "Order", country: "MY" };
  const page = await postForm(app, `${base}/RMS/pay/${merchantId}/`, { ...form, vcode: md5(amount + merchantId + orderid + verifyKey) });
  expect(page.status).toBe(200);
  const html = await page.text();
  const tranID = /<input type="hidden" name="tranID" value="(\d+)">/.exec(html)?.[1];
  const action = /<form method="post" action="([^"]+)">/.exec(html)?.[1];
  if (!tranID || !action) throw new Error("the hosted page has no decision form");
  const decided = await postForm(app, `http://fiuu.test${action}`, { tranID, outcome });
  expect(decided.status).toBe(200);
  return { tranID, orderid, amount };
}

async function metricValue(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  // A histogram lists buckets, sum and count; its count is the number of observations.
  const counted = values.filter((v) => !("metricName" in v) || String(v.metricName).endsWith("_count"));
  return counted.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((sum, v) => sum + v.value, 0);
}

const requests = (metrics: Metrics, operation: string, outcome: string) => metricValue(metrics, "fiuu_requests_total", { operation, outcome });
const breakerGauge = (metrics: Metrics) => metricValue(metrics, "fiuu_circuit_breaker_state", { merchant_id: merchantId });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Forwards a request to the sandbox and rewrites its JSON answer. */
function rewriteJson(change: (fields: Record<string, string>) => Record<string, string>): Intercept {
  return async (request, forward) => {
    const answer = await forward(request);
    const fields = (await answer.json()) as Record<string, string>;
    return Response.json(change(fields));
  };
}

/** Forwards a request with some form fields replaced. */
async function withForm(request: Request, replace: Record<string, string>): Promise<Request> {
  const form = new URLSearchParams(await request.text());
  for (const [name, value] of Object.entries(replace)) form.set(name, value);
  return new Request(request.url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form.toString() });
}

describe("Fiuu client: requery", () => {
  it("reports a paid order as 00, asking q_by_oid with the right skey and verifying the VrfKey", async () => {
    const { client, app, sent, metrics } = setup();
    const { tranID } = await pay(app, "approve", "ORDPAID1");

    const answer = await client.requeryByOrder({ orderId: "ORDPAID1", amount: "10.50" });

    expect(answer).toMatchObject({ statCode: "00", tranId: tranID, amount: "10.50", currency: "MYR", channel: "maybank2u", orderId: "ORDPAID1", errorCode: "" });
    expect(answer.fields.VrfKey).toBe(md5("10.50" + secretKey + merchantId + "ORDPAID1" + "00"));
    expect(sent).toHaveLength(1);
    expect(sent[0]!.url.pathname).toBe("/sandbox/fiuu/RMS/query/q_by_oid.php");
    expect(sent[0]!.form).toEqual({ amount: "10.50", oID: "ORDPAID1", domain: merchantId, type: "2", skey: md5("ORDPAID1" + merchantId + verifyKey + "10.50") });
    expect(await requests(metrics, "requery", "success")).toBe(1);
    expect(await metricValue(metrics, "fiuu_request_duration_seconds", { operation: "requery" })).toBe(1);
  });

  it("reports an order left pending as 22", async () => {
    const { client, app } = setup();
    await pay(app, "pending", "ORDPEND1");
    const answer = await client.requeryByOrder({ orderId: "ORDPEND1", amount: "10.50" });
    expect(answer.statCode).toBe("22");
  });

  it("reports an order Fiuu does not know as 11 with Q04, still verified", async () => {
    const { client } = setup();
    const answer = await client.requeryByOrder({ orderId: "NOSUCHORDER", amount: "5.00" });
    expect(answer).toMatchObject({ statCode: "11", errorCode: "Q04", tranId: "", orderId: "NOSUCHORDER" });
  });

  it("asks q_by_tid by tranID and reads a declined payment as 11 with its error", async () => {
    const { client, app, sent } = setup();
    const { tranID } = await pay(app, "decline", "ORDDECL1", "25.00");
    const answer = await client.requeryByTranId({ tranId: tranID, amount: "25.00" });
    expect(answer).toMatchObject({ statCode: "11", tranId: tranID, amount: "25.00", errorCode: "SB_DECLINED" });
    expect(sent[0]!.url.pathname).toBe("/sandbox/fiuu/RMS/q_by_tid.php");
    expect(sent[0]!.form).toEqual({ amount: "25.00", txID: tranID, domain: merchantId, type: "2", skey: md5(tranID + merchantId + verifyKey + "25.00") });
  });

  it.each([
    ["Key=Value", (text: string) => text],
    ["Key: Value", (text: string) => text.replace(/^([A-Za-z]+)=/gm, "$1: ")],
  ])("reads and verifies a text answer written as %s lines", async (_name, rewrite) => {
    // type=0 makes the sandbox answer text, as Fiuu does.
    const { client, app } = setup({
      intercept: async (request, forward) => {
        const answer = await forward(await withForm(request, { type: "0" }));
        const text = await answer.text();
        expect(text).toMatch(/^StatCode=00$/m);
        return new Response(rewrite(text), { headers: { "content-type": "text/plain" } });
      },
    });
    const { tranID } = await pay(app, "approve", "ORDTEXT1");
    const answer = await client.requeryByOrder({ orderId: "ORDTEXT1", amount: "10.50" });
    expect(answer).toMatchObject({ statCode: "00", tranId: tranID, amount: "10.50", orderId: "ORDTEXT1" });
    expect(answer.fields.BillingDate).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  });

  it.each([
    ["a forged VrfKey", (f: Record<string, string>) => ({ ...f, VrfKey: md5("forged") })],
    ["a declined payment turned into 00", (f: Record<string, string>) => ({ ...f, StatCode: "00" })],
    ["a changed amount", (f: Record<string, string>) => ({ ...f, Amount: "1.00" })],
    ["no VrfKey at all", ({ VrfKey: _dropped, ...f }: Record<string, string>) => f],
    ["an upper-case VrfKey", (f: Record<string, string>) => ({ ...f, VrfKey: f.VrfKey!.toUpperCase() })],
  ])("refuses an answer with %s, and does not retry it", async (_name, tamper) => {
    const { client, app, sent, metrics } = setup({ intercept: rewriteJson(tamper) });
    await pay(app, "decline", "ORDTAMP1");
    const error = await client.requeryByOrder({ orderId: "ORDTAMP1", amount: "10.50" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FiuuProtocolError);
    expect((error as FiuuProtocolError).retryable).toBe(false);
    expect((error as FiuuProtocolError).code).toBeUndefined();
    expect(sent).toHaveLength(1);
    expect(await requests(metrics, "requery", "error")).toBe(1);
  });

  it("refuses a genuine answer about another order", async () => {
    // Fiuu's real, correctly signed answer for ORDOTHER1 handed back to a query for ORDASKED1.
    const { client, app } = setup({
      intercept: async (request, forward) =>
        forward(await withForm(request, { oID: "ORDOTHER1", skey: md5("ORDOTHER1" + merchantId + verifyKey + "10.50") })),
    });
    await pay(app, "approve", "ORDOTHER1");
    await expect(client.requeryByOrder({ orderId: "ORDASKED1", amount: "10.50" })).rejects.toThrow(/another order/);
  });

  it("refuses an answer that is neither JSON nor Key=Value lines", async () => {
    const { client } = setup({ intercept: async () => new Response("<html><body>Maintenance</body></html>", { status: 200 }) });
    await expect(client.requeryByOrder({ orderId: "ORDX1", amount: "1.00" })).rejects.toBeInstanceOf(FiuuProtocolError);
  });

  it("picks the success from a list of attempts for one order, verifying each", async () => {
    const vrf = (statCode: string, tranID: string) => ({
      StatCode: statCode, TranID: tranID, Amount: "10.50", Domain: merchantId, OrderID: "ORDLIST1", Currency: "MYR", Channel: "credit",
      ErrorCode: "", ErrorDesc: "", VrfKey: md5("10.50" + secretKey + merchantId + "ORDLIST1" + statCode),
    });
    const { client } = setup({ intercept: async () => Response.json([vrf("11", "1000000001"), vrf("00", "1000000002"), vrf("22", "1000000003")]) });
    const answer = await client.requeryByOrder({ orderId: "ORDLIST1", amount: "10.50" });
    expect(answer).toMatchObject({ statCode: "00", tranId: "1000000002" });

    const forged = setup({ intercept: async () => Response.json([vrf("11", "1000000001"), { ...vrf("11", "1000000002"), StatCode: "00" }]) });
    await expect(forged.client.requeryByOrder({ orderId: "ORDLIST1", amount: "10.50" })).rejects.toBeInstanceOf(FiuuProtocolError);
  });

  it("turns Fiuu's refusal of a bad skey (Q03) into a protocol error with its code, not retried", async () => {
    const { client, sent, metrics } = setup({ fiuu: { verifyKey: "not-the-verify-key" } });
    const error = await client.requeryByOrder({ orderId: "ORDQ03", amount: "10.50" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FiuuProtocolError);
    expect(error).toMatchObject({ code: "Q03", retryable: false });
    expect(sent).toHaveLength(1);
    expect(await requests(metrics, "requery", "rejected")).toBe(1);
    expect(await metricValue(metrics, "fiuu_retry_attempts_total")).toBe(0);
  });

  it("marks Q99 (throttled) retryable and retries it with backoff", async () => {
    const { client, app, sent, metrics } = setup({ sandbox: { enforceQueryRate: true }, fiuu: { retryAttempts: 2, retryDelayMs: 5 } });
    await pay(app, "approve", "ORDQ99");
    expect((await client.requeryByOrder({ orderId: "ORDQ99", amount: "10.50" })).statCode).toBe("00");
    const error = await client.requeryByOrder({ orderId: "ORDQ99", amount: "10.50" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FiuuProtocolError);
    expect(error).toMatchObject({ code: "Q99", retryable: true });
    expect(sent).toHaveLength(1 + 3);
    expect(await metricValue(metrics, "fiuu_retry_attempts_total")).toBe(2);
    expect(await requests(metrics, "requery", "rejected")).toBe(3);
  });

  it("refuses an amount that is not a Fiuu amount string before asking", async () => {
    const { client, sent } = setup();
    await expect(client.requeryByOrder({ orderId: "ORD1", amount: "1,000.00" })).rejects.toBeInstanceOf(TypeError);
    expect(sent).toHaveLength(0);
  });
});

describe("Fiuu client: IPN echo", () => {
  it("posts every notification field back unchanged plus treq=1, to the payment host", async () => {
    const { client, app, sent, notifications, metrics } = setup({ fiuu: { paymentUrl: "http://pay.fiuu.test/sandbox/fiuu", apiUrl: "http://api.fiuu.test/sandbox/fiuu" } });
    const { tranID } = await pay(app, "approve", "ORDECHO1");
    const notification = notifications.find((n) => n.tranID === tranID && n.nbcb === "2");
    expect(notification).toBeDefined();

    await client.echoIpn(notification!);

    expect(sent).toHaveLength(1);
    expect(sent[0]!.url.host).toBe("pay.fiuu.test");
    expect(sent[0]!.url.pathname).toBe("/sandbox/fiuu/RMS/API/chkstat/returnipn.php");
    const log = (await (await app.request(`${base}/_control/log`)).json()) as { ipnEchoes: Array<{ fields: Record<string, string>; problems: string[] }> };
    expect(log.ipnEchoes).toHaveLength(1);
    expect(log.ipnEchoes[0]!.fields).toEqual({ ...notification, treq: "1" });
    expect(log.ipnEchoes[0]!.problems).toEqual([]);
    expect(await requests(metrics, "echo", "success")).toBe(1);
  });

  it("throws FiuuUnavailableError when the echo is not answered 2xx", async () => {
    const { client } = setup({ fiuu: { retryAttempts: 0 }, intercept: async () => new Response("Not Found", { status: 404 }) });
    const error = await client.echoIpn({ tranID: "1234567890", treq: "0" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FiuuUnavailableError);
    expect(error).toMatchObject({ reason: "http_status", status: 404 });
  });
});

describe("Fiuu client: refunds", () => {
  it("sends a signed refund, verifies the accepted answer, then follows its status to success", async () => {
    const { client, app, sent, metrics } = setup();
    const { tranID } = await pay(app, "approve", "ORDREF1", "10.50");

    const result = await client.refund({ refId: "RF20240101A", txnId: tranID, amount: "4.00", notifyUrl: `${shop}/fiuu/refund` });

    expect(sent[0]!.url.pathname).toBe("/sandbox/fiuu/RMS/API/refundAPI/index.php");
    expect(sent[0]!.form).toEqual({
      RefundType: "P",
      MerchantID: merchantId,
      RefID: "RF20240101A",
      TxnID: tranID,
      Amount: "4.00",
      notify_url: `${shop}/fiuu/refund`,
      Signature: md5("P" + merchantId + "RF20240101A" + tranID + "4.00" + secretKey),
    });
    expect(result.kind).toBe("accepted");
    if (result.kind !== "accepted") return;
    expect(result.status).toBe("pending");
    expect(result.refundId).toMatch(/^\d+$/);
    const f = result.fields;
    expect(f.Signature).toBe(md5("P" + merchantId + "RF20240101A" + result.refundId + tranID + "4.00" + f.Status! + secretKey));

    const pending = await client.refundStatus("RF20240101A");
    expect(sent.at(-1)!.url.pathname).toBe("/sandbox/fiuu/RMS/API/refundAPI/q_by_refID.php");
    expect(sent.at(-1)!.form).toEqual({ RefID: "RF20240101A", MerchantID: merchantId, Signature: md5("RF20240101A" + merchantId + verifyKey) });
    expect(pending).toMatchObject({ kind: "found", refId: "RF20240101A", refundId: result.refundId, txnId: tranID, amount: "4.00", status: "pending" });

    const settle = async (status: string) =>
      app.request(`${base}/_control/refunds/RF20240101A`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ status }) });
    expect((await settle("processing")).status).toBe(200);
    expect(await client.refundStatus("RF20240101A")).toMatchObject({ status: "pending" });
    expect((await settle("00")).status).toBe(200);
    expect(await client.refundStatus("RF20240101A")).toMatchObject({ kind: "found", status: "succeeded" });
    expect(await requests(metrics, "refund", "success")).toBe(1);
    expect(await requests(metrics, "refund_status", "success")).toBe(3);
  });

  it("reads a refund the bank rejected as failed", async () => {
    const { client, app } = setup();
    const { tranID } = await pay(app, "approve", "ORDREF2");
    expect(await client.refund({ refId: "RFREJ1", txnId: tranID, amount: "10.50" })).toMatchObject({ kind: "accepted", status: "pending" });
    await app.request(`${base}/_control/refunds/RFREJ1`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ status: "11" }) });
    expect(await client.refundStatus("RFREJ1")).toMatchObject({ kind: "found", status: "failed" });
  });

  it("sending the same RefID again is the same refund, which is why the refund POST may be retried", async () => {
    const { client, app } = setup();
    const { tranID } = await pay(app, "approve", "ORDREF3");
    const first = await client.refund({ refId: "RFSAME1", txnId: tranID, amount: "10.50" });
    const again = await client.refund({ refId: "RFSAME1", txnId: tranID, amount: "10.50" });
    expect(first.kind).toBe("accepted");
    expect(again).toEqual(first);
  });

  it("returns an over-refund as rejected with Fiuu's code instead of throwing", async () => {
    const { client, app, metrics } = setup();
    const { tranID } = await pay(app, "approve", "ORDREF4", "10.50");
    expect((await client.refund({ refId: "RFOVER1", txnId: tranID, amount: "8.00" })).kind).toBe("accepted");
    const over = await client.refund({ refId: "RFOVER2", txnId: tranID, amount: "3.00" });
    expect(over).toEqual({ kind: "rejected", code: "PR006", message: expect.stringMatching(/exceeds/i) });
    expect(await requests(metrics, "refund", "rejected")).toBe(1);
  });

  it("returns a refund status query for an unknown RefID as rejected (PR004)", async () => {
    const { client } = setup();
    expect(await client.refundStatus("RFNONE1")).toMatchObject({ kind: "rejected", code: "PR004" });
  });

  it.each([
    ["22", "pending", "pending"],
    ["success", "success", "succeeded"],
    ["processing", "processing", "pending"],
    ["rejected", "rejected", "failed"],
  ])("accepts a refund answer whose Status is %s when signed over exactly that word", async (_name, word, expected) => {
    // A Fiuu that answers words (FIUU.md §4): re-signed here over the word, as such a Fiuu would.
    const { client, app } = setup({
      intercept: rewriteJson((f) => ({
        ...f,
        Status: word,
        Signature: md5(f.RefundType! + f.MerchantID! + f.RefID! + f.RefundID! + f.TxnID! + f.Amount! + word + secretKey),
      })),
    });
    const { tranID } = await pay(app, "approve", "ORDWORD1");
    expect(await client.refund({ refId: "RFWORD1", txnId: tranID, amount: "1.00" })).toMatchObject({ kind: "accepted", status: expected });
  });

  it.each([
    ["pending turned into success", (f: Record<string, string>) => ({ ...f, Status: "00" })],
    ["a changed amount", (f: Record<string, string>) => ({ ...f, Amount: "9.00" })],
    ["a forged signature", (f: Record<string, string>) => ({ ...f, Signature: md5("forged") })],
    ["no signature", ({ Signature: _dropped, ...f }: Record<string, string>) => f],
  ])("refuses a refund answer with %s", async (_name, tamper) => {
    const { client, app, sent } = setup({ intercept: rewriteJson(tamper) });
    const { tranID } = await pay(app, "approve", "ORDTAMPR1");
    await expect(client.refund({ refId: "RFTAMP1", txnId: tranID, amount: "1.00" })).rejects.toBeInstanceOf(FiuuProtocolError);
    expect(sent).toHaveLength(1);
  });

  it("refuses a refund amount without exactly two decimals before sending", async () => {
    const { client, sent } = setup();
    await expect(client.refund({ refId: "RFBAD1", txnId: "1234567890", amount: "10.5" })).rejects.toBeInstanceOf(TypeError);
    expect(sent).toHaveLength(0);
  });
});

describe("Fiuu client: timeouts, retries and the circuit breaker", () => {
  it("retries a 5xx with backoff and succeeds, counting the retry", async () => {
    let failures = 1;
    const { client, app, sent, metrics } = setup({
      intercept: async (request, forward) => (failures-- > 0 ? new Response("Service Unavailable", { status: 503 }) : forward(request)),
    });
    await pay(app, "approve", "ORDRETRY1");
    expect((await client.requeryByOrder({ orderId: "ORDRETRY1", amount: "10.50" })).statCode).toBe("00");
    expect(sent).toHaveLength(2);
    expect(await metricValue(metrics, "fiuu_retry_attempts_total")).toBe(1);
    expect(await requests(metrics, "requery", "error")).toBe(1);
    expect(await requests(metrics, "requery", "success")).toBe(1);
  });

  it("turns a network failure into FiuuUnavailableError after retryAttempts retries", async () => {
    const { client, sent, metrics } = setup({
      fiuu: { retryAttempts: 3 },
      intercept: async () => {
        throw new TypeError("fetch failed");
      },
    });
    const error = await client.refundStatus("RFNET1").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FiuuUnavailableError);
    expect(error).toMatchObject({ reason: "network" });
    expect(sent).toHaveLength(4);
    expect(await metricValue(metrics, "fiuu_retry_attempts_total")).toBe(3);
    expect(await requests(metrics, "refund_status", "error")).toBe(4);
  });

  it("gives up on a slow Fiuu after timeoutMs per attempt, counting timeouts", async () => {
    const timeoutMs = 80;
    const { client, app, sent, metrics } = setup({ fiuu: { timeoutMs, retryAttempts: 1, retryDelayMs: 5 } });
    await setFault(app, "slow", 2_000);
    const started = performance.now();
    const error = await client.requeryByOrder({ orderId: "ORDSLOW1", amount: "10.50" }).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(FiuuUnavailableError);
    expect(error).toMatchObject({ reason: "timeout" });
    expect(elapsed).toBeGreaterThanOrEqual(2 * timeoutMs - 5);
    expect(elapsed).toBeLessThan(timeoutMs * (1 + 1) + 150);
    expect(sent).toHaveLength(2);
    expect(await requests(metrics, "requery", "timeout")).toBe(2);
    expect(await metricValue(metrics, "fiuu_retry_attempts_total")).toBe(1);
    expect(await metricValue(metrics, "fiuu_request_duration_seconds", { operation: "requery" })).toBe(2);
    await setFault(app, "none");
  });

  it("opens after N consecutive failures, fails fast while open, half-opens, and closes when Fiuu recovers", async () => {
    const halfOpenAfterMs = 200;
    const { client, app, sent, hooks, metrics, logLines } = setup({
      fiuu: { retryAttempts: 2, retryDelayMs: 5 },
      breaker: { consecutiveFailures: 3, halfOpenAfterMs },
    });
    const { tranID } = await pay(app, "approve", "ORDBREAK1");
    const query = () => client.requeryByTranId({ tranId: tranID, amount: "10.50" });
    expect(await breakerGauge(metrics)).toBe(0);
    expect(client.breakerState()).toBe("closed");

    // Three 503s in a row (the first try and two retries) open the breaker.
    await setFault(app, "down");
    const first = await query().catch((e: unknown) => e);
    expect(first).toBeInstanceOf(FiuuUnavailableError);
    expect(first).toMatchObject({ reason: "http_status", status: 503 });
    expect(sent).toHaveLength(3);
    expect(client.breakerState()).toBe("open");
    expect(await breakerGauge(metrics)).toBe(1);

    // While open: refused at once, nothing reaches Fiuu, nothing is retried.
    const started = performance.now();
    const fast = await query().catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(50);
    expect(fast).toBeInstanceOf(FiuuUnavailableError);
    expect(fast).toMatchObject({ reason: "breaker_open" });
    expect(sent).toHaveLength(3);
    expect(await requests(metrics, "requery", "breaker_open")).toBe(1);

    // After halfOpenAfterMs one trial goes through; Fiuu still down, so it opens again at once.
    await sleep(halfOpenAfterMs + 30);
    await expect(query()).rejects.toMatchObject({ reason: "http_status" });
    expect(sent).toHaveLength(4);
    expect(client.breakerState()).toBe("open");
    expect(await breakerGauge(metrics)).toBe(1);

    // Fiuu recovers: the next trial, seen half-open from inside the request, closes the breaker.
    await setFault(app, "none");
    await sleep(halfOpenAfterMs + 30);
    const seenDuringTrial: Array<{ gauge: number; state: string }> = [];
    hooks.intercept = async (request, forward) => {
      seenDuringTrial.push({ gauge: await breakerGauge(metrics), state: client.breakerState() });
      return forward(request);
    };
    expect((await query()).statCode).toBe("00");
    expect(seenDuringTrial).toEqual([{ gauge: 2, state: "half-open" }]);
    expect(await breakerGauge(metrics)).toBe(0);
    expect(client.breakerState()).toBe("closed");
    expect((await query()).statCode).toBe("00");

    // Transitions are logged with the merchant id, and no log line carries a key or a signature.
    const logs = logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const transitions = logs.filter((l) => l.level === 40 && typeof l.breaker === "string").map((l) => [l.breaker, l.merchantId]);
    expect(transitions).toEqual([
      ["open", merchantId],
      ["half-open", merchantId],
      ["open", merchantId],
      ["half-open", merchantId],
      ["closed", merchantId],
    ]);
    const everything = logLines.join("\n");
    expect(everything).not.toContain(secretKey);
    expect(everything).not.toContain(verifyKey);
    expect(everything).not.toContain(md5(tranID + merchantId + verifyKey + "10.50"));
  });

  it("counts a refused answer as Fiuu being up: protocol errors never open the breaker", async () => {
    const { client, sent } = setup({
      breaker: { consecutiveFailures: 2 },
      intercept: rewriteJson((f) => ({ ...f, VrfKey: md5("forged") })),
    });
    for (let i = 0; i < 4; i++) await expect(client.requeryByOrder({ orderId: "ORDUP1", amount: "1.00" })).rejects.toBeInstanceOf(FiuuProtocolError);
    expect(client.breakerState()).toBe("closed");
    expect(sent).toHaveLength(4);
  });

  it("does no I/O when created and refuses a configuration without keys or hosts", async () => {
    const { sent, metrics } = setup();
    expect(sent).toHaveLength(0);
    expect(await breakerGauge(metrics)).toBe(0);
    const metrics2 = createMetrics({ defaultMetrics: false });
    const logger = pino({ level: "silent" });
    const fiuu = { sandbox: true, localSandbox: false, extendedVcode: false, timeoutMs: 100, retryAttempts: 0, retryDelayMs: 1, queryIntervalMs: 5000, breaker: { threshold: 5, resetMs: 30_000 }, merchantId, verifyKey, paymentUrl: base, apiUrl: base };
    expect(() => createFiuuClient({ fiuu, metrics: metrics2, logger })).toThrow(/secretKey/);
  });
});
