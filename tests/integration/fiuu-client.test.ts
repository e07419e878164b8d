import { createHash } from "node:crypto";
import { Hono } from "hono";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { Config } from "../../lib/core/config.js";
import { createFiuuClient, FiuuProtocolError, FiuuUnavailableError } from "../../lib/adapters/fiuu/client.js";
import { formPostOver } from "../../lib/adapters/fiuu/form-post.js";
import { createFiuuSandbox, type FiuuSandboxOptions } from "../../lib/adapters/fiuu/sandbox/index.js";
import { createMetrics, type Metrics } from "../../lib/core/metrics.js";

// The client against the local sandbox, which plays Fiuu with real signatures. Every expected
// signature is recomputed here with node:crypto from FIUU.md, so a wrong formula in lib/adapters/fiuu cannot
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
  const client = createFiuuClient({
    fiuu,
    metrics,
    logger,
    transport: formPostOver(fetch),
    ...(options.breaker ? { breaker: options.breaker } : {}),
  });
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
  const form = {
    amount,
    orderid,
    currency: "MYR",
    channel: "FPX_MB2U",
    bill_name: "Siti Aminah",
    bill_email: "siti@example.my",
    bill_mobile: "0191234567",
    bill_desc: "Order",
    country: "MY",
  };
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
  // A requery is asked once, as type=0 plain text; these answers are Fiuu's own formats and codes
  // (FIUU.md §3), returned by a fake Fiuu where the sandbox is not needed.
  const noRate = { enforceQueryRate: false };
  const textAnswer = (fields: Record<string, string>, separator = ": ") =>
    new Response(
      `${Object.entries(fields)
        .map(([name, value]) => `${name}${separator}${value}`)
        .join("\n")}\n`,
      { headers: { "content-type": "text/plain" } },
    );
  const answering =
    (fields: Record<string, string>): Intercept =>
    async () =>
      textAnswer(fields);
  const refusalOf = async (promise: Promise<unknown>) => {
    const error = await promise.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FiuuProtocolError);
    const { code, refusal, retryable } = error as FiuuProtocolError;
    return { code, refusal, retryable };
  };
  const misconfigured = (metrics: Metrics, code: string) => metricValue(metrics, "fiuu_misconfiguration_total", { operation: "requery", code });

  /** Forwards a request to the sandbox and rewrites its plain-text answer, field by field. */
  function rewriteText(change: (fields: Record<string, string>) => Record<string, string>): Intercept {
    return async (request, forward) => {
      const text = await (await forward(request)).text();
      const separator = /^[A-Za-z]+: /m.test(text) ? ": " : "=";
      const fields: Record<string, string> = {};
      for (const line of text.split(/\r?\n/).filter(Boolean)) {
        const match = /^([A-Za-z0-9_]+)(?:: |=)(.*)$/.exec(line);
        if (match) fields[match[1]!] = match[2]!;
      }
      return textAnswer(change(fields), separator);
    };
  }

  it("reports a paid order as 00, asking q_by_oid once with type=0 and the right skey, verifying the VrfKey", async () => {
    const { client, app, sent, metrics } = setup();
    const { tranID } = await pay(app, "approve", "ORDPAID1");

    const answer = await client.requeryByOrder({ orderId: "ORDPAID1", amount: "10.50" });

    expect(answer).toMatchObject({ found: true, statCode: "00", tranId: tranID, amount: "10.50", currency: "MYR", orderId: "ORDPAID1" });
    expect(answer.fields.VrfKey).toBe(md5(`10.50${secretKey}${merchantId}ORDPAID100`));
    expect(sent).toHaveLength(1);
    expect(sent[0]!.url.pathname).toBe("/sandbox/fiuu/RMS/query/q_by_oid.php");
    expect(sent[0]!.form).toEqual({
      amount: "10.50",
      oID: "ORDPAID1",
      domain: merchantId,
      type: "0",
      skey: md5(`ORDPAID1${merchantId}${verifyKey}10.50`),
    });
    expect(await requests(metrics, "requery", "success")).toBe(1);
    expect(await metricValue(metrics, "fiuu_request_duration_seconds", { operation: "requery" })).toBe(1);
  });

  it("reports an order left pending as 22", async () => {
    const { client, app } = setup();
    await pay(app, "pending", "ORDPEND1");
    expect(await client.requeryByOrder({ orderId: "ORDPEND1", amount: "10.50" })).toMatchObject({ found: true, statCode: "22" });
  });

  it("asks q_by_tid by tranID with type=0 and reads a declined payment as 11", async () => {
    const { client, app, sent } = setup();
    const { tranID } = await pay(app, "decline", "ORDDECL1", "25.00");
    const answer = await client.requeryByTranId({ tranId: tranID, amount: "25.00" });
    expect(answer).toMatchObject({ found: true, statCode: "11", tranId: tranID, amount: "25.00" });
    expect(sent[0]!.url.pathname).toBe("/sandbox/fiuu/RMS/q_by_tid.php");
    expect(sent[0]!.form).toEqual({
      amount: "25.00",
      txID: tranID,
      domain: merchantId,
      type: "0",
      skey: md5(`${tranID + merchantId + verifyKey}25.00`),
    });
  });

  it.each([
    ["Key=Value", "="],
    ["Key: Value", ": "],
  ])("reads and verifies a plain-text answer written as %s lines", async (_name, separator) => {
    const fields = {
      StatCode: "00",
      StatName: "captured",
      OrderID: "ORDTEXT1",
      Amount: "10.50",
      TranID: "30000000001",
      Domain: merchantId,
      BillingDate: "2026-12-01 10:15:00",
      BillingName: "Siti Aminah",
      VrfKey: md5(`10.50${secretKey}${merchantId}ORDTEXT100`),
      Channel: "FPX_MB2U",
      Currency: "MYR",
      ErrorCode: "",
      ErrorDesc: "",
    };
    const { client } = setup({ intercept: async () => textAnswer(fields, separator) });
    const answer = await client.requeryByOrder({ orderId: "ORDTEXT1", amount: "10.50" });
    expect(answer).toMatchObject({
      found: true,
      statCode: "00",
      tranId: "30000000001",
      amount: "10.50",
      orderId: "ORDTEXT1",
      fields: { BillingDate: "2026-12-01 10:15:00" },
    });
  });

  it("verifies a JSON (type=2 style) answer whose Amount is the JSON number 30.00", async () => {
    const vrf = md5(`30.00${secretKey}${merchantId}ORDJSON100`);
    const body = `{"StatCode":"00","StatName":"captured","OrderID":"ORDJSON1","Amount":30.00,"TranID":30000000002,"Domain":"${merchantId}","VrfKey":"${vrf}","Channel":"credit","Currency":"MYR","ErrorCode":null,"ErrorDesc":null}`;
    const { client } = setup({ intercept: async () => new Response(body, { headers: { "content-type": "application/json" } }) });
    expect(await client.requeryByOrder({ orderId: "ORDJSON1", amount: "30.00" })).toMatchObject({
      found: true,
      statCode: "00",
      amount: "30.00",
      tranId: "30000000002",
    });
  });

  it.each([
    ["Q203", "ErrorCode: Q203\nErrorDesc: Transaction record not found\n"],
    ["Q303", "ErrorCode: Q303\nErrorDesc: Transaction record not found\n"],
    ["Q00005", "ErrorCode=Q00005\nErrorDesc=Transaction record not found\n"],
    ["StatCode -", "StatCode: -\nStatName: -\nOrderID: ORDNONE1\nAmount: -\nTranID: -\nDomain: -\nVrfKey: -\nErrorCode: -\nErrorDesc: -\n"],
  ])("reads Fiuu's not found (%s) as an answer naming no transaction, not as an error", async (_name, body) => {
    const { client, sent, metrics } = setup({ intercept: async () => new Response(body) });
    const answer = await client.requeryByOrder({ orderId: "ORDNONE1", amount: "5.00" });
    expect(answer.found).toBe(false);
    expect(sent).toHaveLength(1);
    expect(await requests(metrics, "requery", "success")).toBe(1);
  });

  it.each(["Q03", "Q00007", "Q00008", "Q05"])("refuses %s (busy) with its code, without resending the query", async (code) => {
    const { client, sent, metrics } = setup({
      fiuu: { retryAttempts: 3 },
      intercept: answering({ ErrorCode: code, ErrorDesc: "System is busy now" }),
    });
    expect(await refusalOf(client.requeryByOrder({ orderId: "ORDBUSY1", amount: "10.50" }))).toEqual({ code, refusal: "busy", retryable: true });
    expect(sent).toHaveLength(1);
    expect(await metricValue(metrics, "fiuu_retry_attempts_total")).toBe(0);
    expect(await requests(metrics, "requery", "rejected")).toBe(1);
    expect(await misconfigured(metrics, code)).toBe(0);
  });

  it("refuses Q99 (blocked) with its code and never resends it", async () => {
    const { client, sent, metrics } = setup({
      fiuu: { retryAttempts: 3 },
      intercept: answering({ ErrorCode: "Q99", ErrorDesc: "Service blocked due to massive connection. Please send only 1 request every 5 minutes." }),
    });
    expect(await refusalOf(client.requeryByOrder({ orderId: "ORDQ99", amount: "10.50" }))).toEqual({
      code: "Q99",
      refusal: "blocked",
      retryable: false,
    });
    expect(sent).toHaveLength(1);
    expect(await metricValue(metrics, "fiuu_retry_attempts_total")).toBe(0);
  });

  it("is answered Q99 by a sandbox asked twice within its window, and asks only once each time", async () => {
    const { client, app, sent } = setup({ sandbox: { enforceQueryRate: true } });
    await pay(app, "approve", "ORDQ99B");
    expect(await client.requeryByOrder({ orderId: "ORDQ99B", amount: "10.50" })).toMatchObject({ found: true, statCode: "00" });
    expect(await refusalOf(client.requeryByOrder({ orderId: "ORDQ99B", amount: "10.50" }))).toMatchObject({ code: "Q99", refusal: "blocked" });
    expect(sent).toHaveLength(2);
  });

  it.each(["Q01", "Q00001", "Q02", "Q00002", "Q07", "Q04", "Q00003", "Q101", "Q201", "Q00004", "Q102", "Q202", "Q150", "Q204"])(
    "refuses %s as a misconfiguration: logged with the code, counted for the alert, not resent",
    async (code) => {
      const { client, sent, metrics, logLines } = setup({
        fiuu: { retryAttempts: 3 },
        intercept: answering({ ErrorCode: code, ErrorDesc: "Invalid Parameter Value" }),
      });
      expect(await refusalOf(client.requeryByOrder({ orderId: "ORDCONF1", amount: "10.50" }))).toEqual({
        code,
        refusal: "misconfigured",
        retryable: false,
      });
      expect(sent).toHaveLength(1);
      expect(await misconfigured(metrics, code)).toBe(1);
      const logged = logLines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((l) => l.code === code);
      expect(logged).toEqual([expect.objectContaining({ level: 50, operation: "requery", code, merchantId })]);
    },
  );

  it("refuses an unlisted code like a misconfiguration (logged and counted), and Q06 as the end of the window (not counted)", async () => {
    const unknown = setup({ intercept: answering({ ErrorCode: "Q42", ErrorDesc: "Something new" }) });
    expect(await refusalOf(unknown.client.requeryByOrder({ orderId: "ORDUNK1", amount: "10.50" }))).toEqual({
      code: "Q42",
      refusal: "unknown",
      retryable: false,
    });
    expect(await misconfigured(unknown.metrics, "Q42")).toBe(1);

    const over = setup({ intercept: answering({ ErrorCode: "Q06", ErrorDesc: "Query period expired" }) });
    expect(await refusalOf(over.client.requeryByOrder({ orderId: "ORDOLD1", amount: "10.50" }))).toEqual({
      code: "Q06",
      refusal: "window_over",
      retryable: false,
    });
    expect(await metricValue(over.metrics, "fiuu_misconfiguration_total")).toBe(0);
  });

  it.each([
    ["a forged VrfKey", (f: Record<string, string>) => ({ ...f, VrfKey: md5("forged") })],
    ["a declined payment turned into 00", (f: Record<string, string>) => ({ ...f, StatCode: "00" })],
    ["a changed amount", (f: Record<string, string>) => ({ ...f, Amount: "1.00" })],
    ["no VrfKey at all", ({ VrfKey: _dropped, ...f }: Record<string, string>) => f],
    ["an upper-case VrfKey", (f: Record<string, string>) => ({ ...f, VrfKey: f.VrfKey!.toUpperCase() })],
  ])("refuses an answer with %s, and does not resend it", async (_name, tamper) => {
    const { client, app, sent, metrics } = setup({ intercept: rewriteText(tamper) });
    await pay(app, "decline", "ORDTAMP1");
    const error = await client.requeryByOrder({ orderId: "ORDTAMP1", amount: "10.50" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FiuuProtocolError);
    expect(error).toMatchObject({ retryable: false, code: undefined, refusal: undefined });
    expect(sent).toHaveLength(1);
    expect(await requests(metrics, "requery", "error")).toBe(1);
  });

  it("refuses a genuine answer about another order", async () => {
    // Fiuu's real, correctly signed answer for ORDOTHER1 handed back to a query for ORDASKED1.
    const { client, app } = setup({
      sandbox: noRate,
      intercept: async (request, forward) =>
        forward(await withForm(request, { oID: "ORDOTHER1", skey: md5(`ORDOTHER1${merchantId}${verifyKey}10.50`) })),
    });
    await pay(app, "approve", "ORDOTHER1");
    await expect(client.requeryByOrder({ orderId: "ORDASKED1", amount: "10.50" })).rejects.toThrow(/another order/);
  });

  it("refuses an answer that is neither Key=Value lines nor JSON", async () => {
    const { client } = setup({ intercept: async () => new Response("<html><body>Maintenance</body></html>", { status: 200 }) });
    await expect(client.requeryByOrder({ orderId: "ORDX1", amount: "1.00" })).rejects.toBeInstanceOf(FiuuProtocolError);
  });

  it("picks the success from a list of attempts for one order, verifying each", async () => {
    const vrf = (statCode: string, tranID: string) => ({
      StatCode: statCode,
      TranID: tranID,
      Amount: "10.50",
      Domain: merchantId,
      OrderID: "ORDLIST1",
      Currency: "MYR",
      Channel: "credit",
      ErrorCode: "",
      ErrorDesc: "",
      VrfKey: md5(`10.50${secretKey}${merchantId}ORDLIST1${statCode}`),
    });
    const { client } = setup({ intercept: async () => Response.json([vrf("11", "1000000001"), vrf("00", "1000000002"), vrf("22", "1000000003")]) });
    const answer = await client.requeryByOrder({ orderId: "ORDLIST1", amount: "10.50" });
    expect(answer).toMatchObject({ found: true, statCode: "00", tranId: "1000000002" });

    const forged = setup({ intercept: async () => Response.json([vrf("11", "1000000001"), { ...vrf("11", "1000000002"), StatCode: "00" }]) });
    await expect(forged.client.requeryByOrder({ orderId: "ORDLIST1", amount: "10.50" })).rejects.toBeInstanceOf(FiuuProtocolError);
  });

  it.each([
    ["a 503", async () => new Response("Service Unavailable", { status: 503 })],
    [
      "a network failure",
      async (): Promise<Response> => {
        throw new TypeError("fetch failed");
      },
    ],
  ])("never resends a requery after %s: the next one waits for the next query slot", async (_name, fail) => {
    const { client, sent, metrics } = setup({ fiuu: { retryAttempts: 3 }, intercept: fail });
    await expect(client.requeryByOrder({ orderId: "ORDDOWN1", amount: "10.50" })).rejects.toBeInstanceOf(FiuuUnavailableError);
    expect(sent).toHaveLength(1);
    expect(await metricValue(metrics, "fiuu_retry_attempts_total")).toBe(0);
  });

  it("refuses an amount that is not a Fiuu amount string before asking", async () => {
    const { client, sent } = setup();
    await expect(client.requeryByOrder({ orderId: "ORD1", amount: "1,000.00" })).rejects.toBeInstanceOf(TypeError);
    expect(sent).toHaveLength(0);
  });
});

describe("Fiuu client: IPN echo", () => {
  it("posts every notification field back unchanged plus treq=1, to the payment host", async () => {
    const { client, app, sent, notifications, metrics } = setup({
      fiuu: { paymentUrl: "http://pay.fiuu.test/sandbox/fiuu", apiUrl: "http://api.fiuu.test/sandbox/fiuu" },
    });
    const { tranID } = await pay(app, "approve", "ORDECHO1");
    const notification = notifications.find((n) => n.tranID === tranID && n.nbcb === "2");
    expect(notification).toBeDefined();

    await client.echoIpn(notification!);

    expect(sent).toHaveLength(1);
    expect(sent[0]!.url.host).toBe("pay.fiuu.test");
    expect(sent[0]!.url.pathname).toBe("/sandbox/fiuu/RMS/API/chkstat/returnipn.php");
    const log = (await (await app.request(`${base}/_control/log`)).json()) as {
      ipnEchoes: Array<{ fields: Record<string, string>; problems: string[] }>;
    };
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
  /** A card payment (Fiuu refunds it to the card: no beneficiary), paid through the sandbox's page. */
  async function payByCard(app: App, orderid: string, amount = "10.50") {
    const form = {
      amount,
      orderid,
      currency: "MYR",
      channel: "credit",
      bill_name: "Siti Aminah",
      bill_email: "siti@example.my",
      bill_mobile: "0191234567",
      bill_desc: "Order",
      country: "MY",
    };
    const page = await postForm(app, `${base}/RMS/pay/${merchantId}/`, { ...form, vcode: md5(amount + merchantId + orderid + verifyKey) });
    const html = await page.text();
    const tranID = /<input type="hidden" name="tranID" value="(\d+)">/.exec(html)?.[1];
    const action = /<form method="post" action="([^"]+)">/.exec(html)?.[1];
    if (!tranID || !action) throw new Error("the hosted page has no decision form");
    expect((await postForm(app, `http://fiuu.test${action}`, { tranID, outcome: "approve" })).status).toBe(200);
    return { tranID };
  }
  const settle = (app: App, refId: string, status: string) =>
    app.request(`${base}/_control/refunds/${refId}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ status }),
    });
  const next = (app: App, body: Record<string, unknown>) =>
    app.request(`${base}/_control/next`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  it("sends a signed refund once with idempotency-key, verifies the accepted answer (numbers as JSON numbers), then follows its status to success", async () => {
    const { client, app, sent, metrics } = setup();
    const { tranID } = await payByCard(app, "ORDREF1", "10.50");

    const result = await client.refund({ refId: "RF20240101A", txnId: tranID, amount: "4.00", notifyUrl: `${shop}/fiuu/refund` });

    expect(sent[0]!.url.pathname).toBe("/sandbox/fiuu/RMS/API/refundAPI/index.php");
    expect(sent[0]!.form).toEqual({
      RefundType: "P",
      MerchantID: merchantId,
      RefID: "RF20240101A",
      TxnID: tranID,
      Amount: "4.00",
      notify_url: `${shop}/fiuu/refund`,
      Signature: md5(`P${merchantId}RF20240101A${tranID}4.00${secretKey}`),
    });
    const received = (await (await app.request(`${base}/_control/requests?operation=refund`)).json()) as {
      requests: { idempotencyKey: string | null; answer: string }[];
    };
    expect(received.requests.at(-1)!.idempotencyKey).toBe("RF20240101A");
    expect(result.kind).toBe("accepted");
    if (result.kind !== "accepted") return;
    expect(result.status).toBe("pending");
    expect(result.refundId).toMatch(/^\d+$/);
    expect(result.fields.Signature).toBe(md5(`P${merchantId}RF20240101A${result.refundId}${tranID}4.0022${secretKey}`));

    const pending = await client.refundStatus("RF20240101A");
    expect(sent.at(-1)!.url.pathname).toBe("/sandbox/fiuu/RMS/API/refundAPI/q_by_refID.php");
    expect(sent.at(-1)!.form).toEqual({ RefID: "RF20240101A", MerchantID: merchantId, Signature: md5(`RF20240101A${merchantId}${verifyKey}`) });
    expect(pending).toMatchObject({ kind: "found", refId: "RF20240101A", refundId: result.refundId, txnId: tranID, status: "pending" });

    expect((await settle(app, "RF20240101A", "processing")).status).toBe(200);
    expect(await client.refundStatus("RF20240101A")).toMatchObject({ status: "pending" });
    expect((await settle(app, "RF20240101A", "00")).status).toBe(200);
    expect(await client.refundStatus("RF20240101A")).toMatchObject({ kind: "found", status: "succeeded" });
    expect(await requests(metrics, "refund", "success")).toBe(1);
    expect(await requests(metrics, "refund_status", "success")).toBe(3);
  });

  it("reads a refund the bank rejected as failed", async () => {
    const { client, app } = setup();
    const { tranID } = await payByCard(app, "ORDREF2");
    expect(await client.refund({ refId: "RFREJ1", txnId: tranID, amount: "10.50" })).toMatchObject({ kind: "accepted", status: "pending" });
    await settle(app, "RFREJ1", "11");
    expect(await client.refundStatus("RFREJ1")).toMatchObject({ kind: "found", status: "failed" });
  });

  it("never resends a refund POST: a 503 or a lost answer is thrown after one request", async () => {
    const { client, app, sent } = setup();
    const { tranID } = await payByCard(app, "ORDREF3");
    await setFault(app, "down");
    await expect(client.refund({ refId: "RFONCE1", txnId: tranID, amount: "1.00" })).rejects.toBeInstanceOf(FiuuUnavailableError);
    expect(sent.filter((s) => s.url.pathname.endsWith("/index.php"))).toHaveLength(1);
    await setFault(app, "none");
    expect((await next(app, { operation: "refund", effect: "lose_answer" })).status).toBe(200);
    await expect(client.refund({ refId: "RFONCE2", txnId: tranID, amount: "1.00" })).rejects.toBeInstanceOf(FiuuUnavailableError);
    expect(sent.filter((s) => s.url.pathname.endsWith("/index.php"))).toHaveLength(2);
    // The lost one was made at Fiuu: the status query finds it.
    expect(await client.refundStatus("RFONCE2")).toMatchObject({ kind: "found", status: "pending" });
  });

  it("answers PR016 for a RefID sent again, and classifies it as an existing refund, not a failure", async () => {
    const { client, app } = setup();
    const { tranID } = await payByCard(app, "ORDREF4");
    expect((await client.refund({ refId: "RFSAME1", txnId: tranID, amount: "1.00" })).kind).toBe("accepted");
    expect(await client.refund({ refId: "RFSAME1", txnId: tranID, amount: "1.00" })).toMatchObject({
      kind: "rejected",
      code: "PR016",
      refusal: "exists",
    });
  });

  it("returns an over-refund as rejected (PR011) with Fiuu's text instead of throwing", async () => {
    const { client, app, metrics } = setup();
    const { tranID } = await payByCard(app, "ORDREF5", "10.50");
    expect((await client.refund({ refId: "RFOVER1", txnId: tranID, amount: "8.00" })).kind).toBe("accepted");
    const over = await client.refund({ refId: "RFOVER2", txnId: tranID, amount: "3.00" });
    expect(over).toMatchObject({ kind: "rejected", code: "PR011", refusal: "final" });
    expect(await requests(metrics, "refund", "rejected")).toBe(1);
  });

  it("sends the beneficiary of a non-card refund as BankCode, BankCountry, BeneficiaryName, BeneficiaryAccNo", async () => {
    const { client, app, sent } = setup();
    const { tranID } = await pay(app, "approve", "ORDREF6");
    expect(await client.refund({ refId: "RFFPX0", txnId: tranID, amount: "1.00" })).toMatchObject({
      kind: "rejected",
      code: "PR014",
      refusal: "final",
    });
    const beneficiary = { bankCode: "MBB0228", name: "Siti Aminah", accountNumber: "512345678901", country: "MY" };
    expect(await client.refund({ refId: "RFFPX1", txnId: tranID, amount: "1.00", beneficiary })).toMatchObject({ kind: "accepted" });
    expect(sent.at(-1)!.form).toMatchObject({
      BankCode: "MBB0228",
      BankCountry: "MY",
      BeneficiaryName: "Siti Aminah",
      BeneficiaryAccNo: "512345678901",
    });
  });

  it.each([
    ["PR001", "misconfigured"],
    ["PR007", "misconfigured"],
    ["PR008", "misconfigured"],
    ["PR010", "retry_if_pending"],
    ["PR015", "retry"],
    ["PR020", "retry"],
    ["PR019", "final"],
  ])("classifies %s as %s, counting misconfigurations", async (code, refusal) => {
    const { client, app, metrics } = setup();
    const { tranID } = await payByCard(app, `ORDC${code}`);
    expect((await next(app, { operation: "refund", effect: "error_code", code })).status).toBe(200);
    expect(await client.refund({ refId: `RF${code}`, txnId: tranID, amount: "1.00" })).toMatchObject({ kind: "rejected", code, refusal });
    expect(await metricValue(metrics, "fiuu_misconfiguration_total", { operation: "refund", code })).toBe(refusal === "misconfigured" ? 1 : 0);
  });

  it("reads INQ006 as not found (the request never reached Fiuu), and other INQ codes as refusals", async () => {
    const { client, app } = setup();
    expect(await client.refundStatus("RFNONE1")).toEqual({ kind: "not_found" });
    expect((await next(app, { operation: "refund_status", effect: "error_code", code: "INQ005" })).status).toBe(200);
    expect(await client.refundStatus("RFNONE1")).toMatchObject({ kind: "rejected", code: "INQ005" });
  });

  it.each([
    ["pending", "22", "pending"],
    ["success", "00", "succeeded"],
    ["processing", "22", "pending"],
    ["rejected", "11", "failed"],
  ])("accepts a refund answer whose Status is the word %s, signed over its code %s", async (word, code, expected) => {
    const { client, app } = setup({
      intercept: rewriteJson((f) => ({
        ...f,
        Status: word,
        Signature: md5(f.RefundType! + f.MerchantID! + f.RefID! + f.RefundID! + f.TxnID! + f.Amount! + code + secretKey),
      })),
    });
    const { tranID } = await payByCard(app, `ORDW${word}`);
    expect(await client.refund({ refId: `RFW${word}`, txnId: tranID, amount: "1.00" })).toMatchObject({ kind: "accepted", status: expected });
  });

  it.each([
    ["pending turned into success", (f: Record<string, string>) => ({ ...f, Status: "00" })],
    ["a changed amount", (f: Record<string, string>) => ({ ...f, Amount: "9.00" })],
    ["a forged signature", (f: Record<string, string>) => ({ ...f, Signature: md5("forged") })],
    ["no signature", ({ Signature: _dropped, ...f }: Record<string, string>) => f],
  ])("refuses a refund answer with %s, after one request", async (_name, tamper) => {
    const { client, app, sent } = setup({ intercept: rewriteJson(tamper) });
    const { tranID } = await payByCard(app, "ORDTAMPR1");
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
  it("retries a 5xx of a call safe to repeat (the IPN echo) with backoff and succeeds, counting the retry", async () => {
    let failures = 1;
    const { client, sent, metrics } = setup({
      intercept: async (request, forward) => (failures-- > 0 ? new Response("Service Unavailable", { status: 503 }) : forward(request)),
    });
    await client.echoIpn({ tranID: "30000000003", orderid: "ORDRETRY1", status: "00", treq: "0" });
    expect(sent).toHaveLength(2);
    expect(await metricValue(metrics, "fiuu_retry_attempts_total")).toBe(1);
    expect(await requests(metrics, "echo", "error")).toBe(1);
    expect(await requests(metrics, "echo", "success")).toBe(1);
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
    const error = await client.echoIpn({ tranID: "30000000004", treq: "0" }).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(FiuuUnavailableError);
    expect(error).toMatchObject({ reason: "timeout" });
    expect(elapsed).toBeGreaterThanOrEqual(2 * timeoutMs - 5);
    expect(elapsed).toBeLessThan(timeoutMs * (1 + 1) + 150);
    expect(sent).toHaveLength(2);
    expect(await requests(metrics, "echo", "timeout")).toBe(2);
    expect(await metricValue(metrics, "fiuu_retry_attempts_total")).toBe(1);
    expect(await metricValue(metrics, "fiuu_request_duration_seconds", { operation: "echo" })).toBe(2);

    // A requery times out the same way, and is not resent.
    sent.length = 0;
    await expect(client.requeryByOrder({ orderId: "ORDSLOW1", amount: "10.50" })).rejects.toMatchObject({ reason: "timeout" });
    expect(sent).toHaveLength(1);
    await setFault(app, "none");
  });

  it("opens after N consecutive failures, fails fast while open, half-opens, and closes when Fiuu recovers", async () => {
    const halfOpenAfterMs = 200;
    const { client, app, sent, hooks, metrics, logLines } = setup({
      fiuu: { retryAttempts: 2, retryDelayMs: 5 },
      breaker: { consecutiveFailures: 3, halfOpenAfterMs },
      sandbox: { enforceQueryRate: false },
    });
    const { tranID } = await pay(app, "approve", "ORDBREAK1");
    const query = () => client.requeryByTranId({ tranId: tranID, amount: "10.50" });
    expect(await breakerGauge(metrics)).toBe(0);
    expect(client.breakerState()).toBe("closed");

    // Three 503s in a row (three requeries, none of them resent) open the breaker.
    await setFault(app, "down");
    for (let i = 0; i < 3; i++) {
      const failed = await query().catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(FiuuUnavailableError);
      expect(failed).toMatchObject({ reason: "http_status", status: 503 });
    }
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
    expect(await query()).toMatchObject({ found: true, statCode: "00" });
    expect(seenDuringTrial).toEqual([{ gauge: 2, state: "half-open" }]);
    expect(await breakerGauge(metrics)).toBe(0);
    expect(client.breakerState()).toBe("closed");
    expect(await query()).toMatchObject({ found: true, statCode: "00" });

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
    expect(everything).not.toContain(md5(`${tranID + merchantId + verifyKey}10.50`));
  });

  it("counts a refused answer as Fiuu being up: protocol errors never open the breaker", async () => {
    const forged = `StatCode: 00\nOrderID: ORDUP1\nAmount: 1.00\nTranID: 30000000005\nDomain: ${merchantId}\nVrfKey: ${md5("forged")}\n`;
    const { client, sent } = setup({
      breaker: { consecutiveFailures: 2 },
      intercept: async () => new Response(forged),
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
    const fiuu = {
      sandbox: true,
      localSandbox: false,
      extendedVcode: false,
      timeoutMs: 100,
      retryAttempts: 0,
      retryDelayMs: 1,
      queryIntervalMs: 5000,
      breaker: { threshold: 5, resetMs: 30_000 },
      merchantId,
      verifyKey,
      paymentUrl: base,
      apiUrl: base,
    };
    expect(() => createFiuuClient({ fiuu, metrics: metrics2, logger })).toThrow(/secretKey/);
  });
});
