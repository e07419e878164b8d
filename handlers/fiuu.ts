import { Hono, type Context } from "hono";
import { html } from "hono/html";
import type { AppEnv } from "../lib/http/context.js";
import { ApiError } from "../lib/core/errors.js";
import { parseJsonFields } from "../lib/adapters/fiuu/json.js";
import { acceptRefundNotice, acceptReturn, acceptServerReport, callbackAcknowledgement } from "../lib/domain/fiuu-messages.js";
import { resultPageView } from "../lib/domain/payments/result-page.js";
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
    const { callback } = await acceptServerReport(c.get("deps"), fields, c.get("requestId"));
    if (callback) return c.body(callbackAcknowledgement, 200, { "content-type": "text/plain" });
    return c.text("OK", 200);
  };
  app.post("/webhooks/fiuu/notify", onServerReport);
  app.post("/webhooks/fiuu/callback", onServerReport);

  // The return and result pages are public: per-client page budget; a signed return is never refused.
  const limitReturn = limitUnsignedReturns();
  const onReturn = async (c: Context<AppEnv>) => {
    const fields = await reportFields(c);
    await limitReturn(c, fields);
    // A bad signature still sends the shopper on to the payment's real status (acceptReturn).
    const location = await acceptReturn(c.get("deps"), fields, c.get("requestId"));
    if (!location) return c.html(page("Payment", html`<h1>We could not find this payment</h1><p>Please return to the shop.</p>`), 404);
    return c.redirect(location, 303);
  };
  app.post("/webhooks/fiuu/return", onReturn);
  app.get("/webhooks/fiuu/return", onReturn);

  app.post("/webhooks/fiuu/refund", async (c) => {
    const fields = await reportFields(c, { json: true });
    await limitUnsigned(c, "refund_notice", fields);
    await acceptRefundNotice(c.get("deps"), fields, c.get("requestId"));
    return c.text("OK", 200);
  });

  app.get("/pay/:id/result", publicPageLimit(), async (c) => {
    const view = await resultPageView(c.get("deps"), c.req.param("id"));
    if (!view) {
      return c.html(
        page(
          "Payment not found",
          html`<h1>Payment not found</h1><p>We have no payment under this link. Check the link, or go back to the shop's page and start again.</p>`,
        ),
        404,
      );
    }
    c.header("cache-control", "no-store");
    return c.html(resultPage(view.payment, view.final, { backUrl: view.backUrl, retryUrl: view.retryUrl }));
  });

  return app;
}
