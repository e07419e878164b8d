import { Hono, type Context } from "hono";
import { html } from "hono/html";
import type { AppEnv } from "../lib/http/context.js";
import { ApiError } from "../lib/core/errors.js";
import { parseJsonFields } from "../lib/adapters/fiuu/json.js";
import { applyFiuuReport, type ReportResult } from "../lib/domain/payments/reports.js";
import { bringRequeryForward } from "../lib/domain/payments/requery-queue.js";
import { applyRefundNotice } from "../lib/domain/refunds/jobs.js";
import { findPaymentById, listPayments } from "../lib/domain/payments/queries.js";
import type { PaymentRow } from "../lib/domain/payments/resource.js";
import { publicPageLimit } from "../lib/http/rate-limit.js";
import { limitUnsignedFiuuMessages, limitUnsignedReturns } from "../lib/http/report-limit.js";
import { findUnstorableText } from "../lib/core/text.js";
import { page } from "./views/layout.js";
import { resultPage } from "./views/result.js";

/** Fiuu's messages are a few hundred bytes; anything far larger is not from Fiuu. */
export const maxFiuuMessageBytes = 16 * 1024;

const tooLarge = () => new ApiError("payload_too_large", `Fiuu's messages are at most ${maxFiuuMessageBytes} bytes.`);

/** The body's text, refused with 413 beyond maxFiuuMessageBytes (declared or read). */
async function boundedText(c: Context<AppEnv>): Promise<string> {
  if (Number(c.req.header("content-length") ?? 0) > maxFiuuMessageBytes) throw tooLarge();
  const text = await c.req.text();
  if (Buffer.byteLength(text, "utf8") > maxFiuuMessageBytes) throw tooLarge();
  return text;
}

/**
 * Reads Fiuu's form-encoded POST (or, for the return URL, a GET query) as plain string fields;
 * with `json`, a JSON object too (a refund notice, FIUU.md §4), its numbers kept as written.
 */
async function reportFields(c: Context<AppEnv>, options: { json?: boolean } = {}): Promise<Record<string, string>> {
  // A plain copy: Hono hands out a null-prototype object, which the JSON column writer cannot take.
  if (c.req.method === "GET") {
    if (c.req.url.length > maxFiuuMessageBytes) throw tooLarge();
    return { ...c.req.query() };
  }
  const type = c.req.header("content-type") ?? "";
  const fields: Record<string, string> = {};
  if (type.includes("application/x-www-form-urlencoded")) {
    // Fiuu's usual form, read from the body's text: the Request's formData() would build web
    // streams and a FormData for the same result. A repeated field counts once, the last, as there.
    for (const [name, value] of new URLSearchParams(await boundedText(c))) fields[name] = value;
  } else if (options.json && /^application\/([\w.+-]+\+)?json\b/i.test(type)) {
    const parsed = parseJsonFields(await boundedText(c));
    if (!parsed || Array.isArray(parsed)) throw new ApiError("invalid_request", "The JSON body must be one object of fields.");
    Object.assign(fields, parsed);
  } else if (type.includes("multipart/form-data")) {
    if (Number(c.req.header("content-length") ?? 0) > maxFiuuMessageBytes) throw tooLarge();
    let body: Awaited<ReturnType<typeof c.req.parseBody>>;
    try {
      body = await c.req.parseBody();
    } catch {
      // A multipart body without its boundary, or cut short: nothing of it can be a report.
      throw new ApiError("invalid_request", "The form body cannot be parsed.");
    }
    for (const [name, value] of Object.entries(body)) if (typeof value === "string") fields[name] = value;
  } else {
    throw new ApiError("invalid_request", options.json ? "Fiuu posts form-encoded fields or JSON." : "Fiuu posts form-encoded fields.");
  }
  // Fiuu never sends a NUL; Postgres could not store the message to record it.
  if (findUnstorableText(fields) !== undefined) throw new ApiError("invalid_request", "A form field contains a NUL character.");
  return fields;
}

function refuseRejected(result: ReportResult) {
  if (result.outcome === "rejected") throw new ApiError("invalid_request", `Report refused: ${result.detail}.`);
}

const finalStatuses = new Set(["succeeded", "failed", "cancelled", "expired", "conflicted"]);

/**
 * Fiuu's three report URLs. Each stores and applies the report before it answers, so an answer
 * means the report is safe; a database failure answers 503 and Fiuu sends it again. None of them
 * depends on Redis: only a message failing its signature touches it, for the limiter, which fails open.
 */
export function fiuuRoutes() {
  const app = new Hono<AppEnv>();
  // Messages failing their signature are limited per client (30 a minute), valid ones never are.
  const limitUnsigned = limitUnsignedFiuuMessages();

  // callbackurl doubles as the notification URL (FIUU.md §2): either kind may arrive at either URL,
  // so each is answered by its nbcb. A callback must read exactly CBTOKEN:MPSTATOK, or Fiuu retries it.
  const onServerReport = async (c: Context<AppEnv>) => {
    const fields = await reportFields(c);
    await limitUnsigned(c, "report", fields);
    const result = await applyFiuuReport(c.get("deps"), fields, c.get("requestId"));
    refuseRejected(result);
    if (fields.nbcb === "1") return c.body("CBTOKEN:MPSTATOK", 200, { "content-type": "text/plain" });
    return c.text("OK", 200);
  };
  app.post("/webhooks/fiuu/notify", onServerReport);
  app.post("/webhooks/fiuu/callback", onServerReport);

  // The return and result pages are public: per-client page budget; a signed return is never refused.
  const limitReturn = limitUnsignedReturns();
  const onReturn = async (c: Context<AppEnv>) => {
    const fields = await reportFields(c);
    await limitReturn(c, fields);
    const result = await applyFiuuReport(c.get("deps"), fields, c.get("requestId"));
    // The shopper is not to blame for a bad signature: they still go on to see the payment's
    // real (unchanged) status; only a report naming no payment at all is refused.
    const payment = result.payment;
    if (!payment) {
      if (result.outcome === "rejected") refuseRejected(result);
      return c.html(page("Payment", html`<h1>We could not find this payment</h1><p>Please return to the shop.</p>`), 404);
    }
    return c.redirect(resultLocation(c.get("deps").config.publicUrl, payment), 303);
  };
  app.post("/webhooks/fiuu/return", onReturn);
  app.get("/webhooks/fiuu/return", onReturn);

  app.post("/webhooks/fiuu/refund", async (c) => {
    const fields = await reportFields(c, { json: true });
    await limitUnsigned(c, "refund_notice", fields);
    const outcome = await applyRefundNotice(c.get("deps"), fields, c.get("requestId"));
    if (outcome === "rejected") throw new ApiError("invalid_request", "Refund notice refused: its Signature does not verify.");
    return c.text("OK", 200);
  });

  app.get("/pay/:id/result", publicPageLimit(), async (c) => {
    const payment = await findPaymentById(c.get("deps").database.db, c.req.param("id"));
    if (!payment) {
      return c.html(page("Payment not found", html`<h1>Payment not found</h1><p>We have no payment under this link. Check the link, or go back to the shop's page and start again.</p>`), 404);
    }
    const final = finalStatuses.has(payment.status);
    if (!final && payment.checkoutStartedAt) {
      // A shopper is waiting on this page (it refreshes every 3 s): ask Fiuu soon rather than on
      // the slow schedule — at most once per payment per 5 minutes, behind every requery and expiry
      // due earlier, and not at all without Redis, so no refreshing can delay other payments.
      await bringRequeryForward(c.get("deps"), payment.id);
    }
    c.header("cache-control", "no-store");
    const backUrl = payment.returnUrl ? resultLocation(c.get("deps").config.publicUrl, payment) : undefined;
    // "Try again" sends the shopper to the shop (a browser never creates a payment or chooses an
    // amount): only for a declined payment whose order no other payment holds (create.ts's rule).
    let retryUrl: string | undefined;
    if (backUrl && payment.status === "failed") {
      const { rows } = await listPayments(c.get("deps").database.db, { order_id: payment.orderId, limit: 20 });
      const held = rows.some((other) => other.id !== payment.id && ["created", "pending", "succeeded", "conflicted"].includes(other.status));
      if (!held) {
        const url = new URL(backUrl);
        url.searchParams.set("action", "retry");
        retryUrl = url.toString();
      }
    }
    return c.html(resultPage(payment, final, { backUrl, retryUrl }));
  });

  return app;
}

/** Where the shopper goes after Fiuu: the shop's return_url with payment_id and status, or our result page. */
function resultLocation(publicUrl: string, payment: PaymentRow): string {
  if (!payment.returnUrl) return `${publicUrl}/pay/${payment.id}/result`;
  const url = new URL(payment.returnUrl);
  url.searchParams.set("payment_id", payment.id);
  url.searchParams.set("status", payment.status);
  return url.toString();
}
