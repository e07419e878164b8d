import type { Context, Hono } from "hono";
import { z } from "zod";
import { refundErrors, refundStatusErrors, requeryErrorDesc } from "./codes.js";
import { errorPage, pendingPage } from "./pages.js";
import {
  applyOutcome,
  deliver,
  malaysiaTime,
  readParams,
  refundJson,
  sendReports,
  signedRefundFields,
  type NextEffect,
  type SandboxState,
} from "./state.js";

// Test control: what a tester does in Fiuu's portal or waits for in real life (a pending payment
// resolving, a refund being processed, an outage, a lost answer), as JSON routes under /_control/.

// `report: false` settles without telling the merchant, as when Fiuu's reports are lost: only a
// requery can then find out.
const settleTransaction = z.object({ status: z.enum(["00", "11"]), report: z.boolean().default(true) });
// `statusAs: "word"` writes success/rejected in the notice's Status (the Signature stays over the
// code, as in a recorded answer, FIUU.md §4); `encoding: "form"` posts it form-encoded, not JSON.
const settleRefund = z.object({
  status: z.enum(["00", "11", "processing"]),
  statusAs: z.enum(["code", "word"]).default("code"),
  encoding: z.enum(["json", "form"]).default("json"),
  reason: z.string().max(255).optional(),
});
const faults = z.object({ mode: z.enum(["none", "down", "slow", "error"]), delayMs: z.number().int().min(0).max(600_000).optional() });
const age = z.object({ daysAgo: z.number().min(0).max(3650) });
const next = z.object({
  operation: z.enum(["refund", "refund_status", "requery", "echo", "any"]),
  effect: z.enum(["lose_answer", "drop", "error_code"]),
  count: z.number().int().min(1).max(1000).default(1),
  code: z.string().max(16).optional(),
  desc: z.string().max(255).optional(),
});
const operations = ["refund", "refund_status", "requery", "echo"] as const;

async function jsonBody<T>(c: Context, schema: z.ZodType<T>): Promise<T | Response> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return c.json({ error: "the body must be JSON" }, 400);
  }
  const parsed = schema.safeParse(body);
  return parsed.success ? parsed.data : c.json({ error: "invalid body", issues: parsed.error.issues }, 400);
}

/** The spec's wording for an injected code, or why that code cannot be injected for the operation. */
function injectedDesc(operation: string, code: string | undefined, desc: string | undefined): { desc: string } | { error: string } {
  if (!code) return { error: "error_code needs a code" };
  const families: Record<string, { pattern: RegExp; known: (code: string) => string | undefined }> = {
    refund: { pattern: /^PR[0-9]{3}$/, known: (c) => (refundErrors as Record<string, string>)[c] },
    refund_status: { pattern: /^INQ[0-9]{3}$/, known: (c) => (refundStatusErrors as Record<string, string>)[c] },
    requery: { pattern: /^Q[0-9]{2,5}$/, known: (c) => requeryErrorDesc(c) },
  };
  const family = families[operation];
  if (!family) return { error: `${operation} has no error codes to answer; use refund, refund_status or requery` };
  if (!family.pattern.test(code)) return { error: `${code} is not a ${operation} code` };
  const text = desc ?? family.known(code)?.replace("{{TRANSACTION_STATUS}}", "pending");
  return text === undefined ? { error: `${code} is not in the spec's table; give its desc` } : { desc: text };
}

/** Routes a test uses to steer the sandbox and read what it sent and received. */
export function registerControl(app: Hono, state: SandboxState): void {
  app.get("/_control/transactions", (c) => c.json({ transactions: [...state.transactions.values()] }));

  app.get("/_control/transactions/:tranID", (c) => {
    const tx = state.transactions.get(c.req.param("tranID"));
    return tx ? c.json(tx) : c.json({ error: "no such transaction" }, 404);
  });

  // A pending payment resolves: Fiuu reports it again, by notification and callback.
  app.post("/_control/transactions/:tranID", async (c) => {
    const body = await jsonBody(c, settleTransaction);
    if (body instanceof Response) return body;
    const tx = state.transactions.get(c.req.param("tranID"));
    if (!tx) return c.json({ error: "no such transaction" }, 404);
    if (tx.status !== "22") return c.json({ error: `only a pending (22) transaction settles; this one is ${tx.status}` }, 409);
    applyOutcome(state, tx, body.status);
    const deliveries = body.report ? await sendReports(state, tx) : [];
    return c.json({ transaction: tx, deliveries });
  });

  // The same report again, as Fiuu does when a notification was not acknowledged.
  app.post("/_control/transactions/:tranID/resend", async (c) => {
    const tx = state.transactions.get(c.req.param("tranID"));
    if (!tx) return c.json({ error: "no such transaction" }, 404);
    if (tx.status === "awaiting") return c.json({ error: "the shopper has not decided yet; nothing to report" }, 409);
    const deliveries = await sendReports(state, tx);
    return c.json({ transaction: tx, deliveries });
  });

  // Moves a transaction's creation back in time, e.g. past the 180-day refund period (PR017).
  app.post("/_control/transactions/:tranID/created", async (c) => {
    const body = await jsonBody(c, age);
    if (body instanceof Response) return body;
    const tx = state.transactions.get(c.req.param("tranID"));
    if (!tx) return c.json({ error: "no such transaction" }, 404);
    tx.createdAtMs = state.now().getTime() - Math.round(body.daysAgo * 86_400_000);
    tx.createdAt = malaysiaTime(new Date(tx.createdAtMs));
    return c.json({ transaction: tx });
  });

  app.get("/_control/refunds", (c) => c.json({ refunds: [...state.refunds.values()] }));

  app.get("/_control/refunds/:refId", (c) => {
    const refund = state.refunds.get(c.req.param("refId"));
    return refund ? c.json(refund) : c.json({ error: "no such refund" }, 404);
  });

  // A refund is processed; with a notify_url on the request, Fiuu posts the outcome there, "same
  // format as the response of this API" (spec p.99): JSON, final Status 00 or 11, signed alike.
  app.post("/_control/refunds/:refId", async (c) => {
    const body = await jsonBody(c, settleRefund);
    if (body instanceof Response) return body;
    const refund = state.refunds.get(c.req.param("refId"));
    if (!refund) return c.json({ error: "no such refund" }, 404);
    if (refund.state !== "pending" && refund.state !== "processing") {
      return c.json({ error: `the refund is already ${refund.state}` }, 409);
    }
    refund.state = body.status === "00" ? "success" : body.status === "11" ? "rejected" : "processing";
    refund.reason = body.status === "11" ? (body.reason ?? "Rejected by the bank (sandbox)") : "";
    refund.updatedAt = malaysiaTime(state.now());
    if (body.status === "processing" || !refund.notifyUrl) return c.json({ refund });
    const shown = body.statusAs === "word" ? refund.state : body.status;
    const fields = signedRefundFields(state, refund, body.status, shown);
    const delivery = await deliver(state, "refund_notice", refund.notifyUrl, fields, body.encoding === "json" ? refundJson(fields) : undefined);
    return c.json({ refund, delivery });
  });

  // The same settlement for a person: an HTML list of the pending transactions with Approve and
  // Decline buttons (form posts), so the pending → settled path can be clicked through.
  const settledFromList: string[] = [];
  app.get("/_control/pending", (c) => {
    const base = c.req.path.replace(/\/$/, "");
    const pending = [...state.transactions.values()]
      .filter((tx) => tx.status === "22")
      .map((tx) => ({ tx, settleAction: `${base}/${encodeURIComponent(tx.tranID)}` }));
    const settled = settledFromList.flatMap((id) => state.transactions.get(id) ?? []);
    const flash = c.req.query("settled");
    const flashTx = flash ? state.transactions.get(flash) : undefined;
    const message = flashTx
      ? `Order ${flashTx.orderid} ${flashTx.status === "00" ? "approved" : "declined"}: the merchant was sent Fiuu's notification${flashTx.callbackUrl ? " and callback" : ""}.`
      : undefined;
    c.header("cache-control", "no-store");
    return c.html(pendingPage(pending, settled, message));
  });

  app.post("/_control/pending/:tranID", async (c) => {
    const form = await readParams(c);
    const tx = state.transactions.get(c.req.param("tranID"));
    if (!tx) return c.html(errorPage("Unknown transaction", "This sandbox has no such transaction."), 404);
    if (tx.status !== "22") {
      return c.html(
        errorPage("Not pending", `Transaction ${tx.tranID} is ${tx.status === "awaiting" ? "not decided yet" : "already settled"}.`),
        409,
      );
    }
    const outcome = form.outcome === "approve" ? "00" : form.outcome === "decline" ? "11" : undefined;
    if (!outcome) return c.html(errorPage("Invalid outcome", "outcome must be approve or decline."), 400);
    applyOutcome(state, tx, outcome);
    await sendReports(state, tx);
    settledFromList.unshift(tx.tranID);
    settledFromList.length = Math.min(settledFromList.length, 20);
    const list = c.req.path.replace(/\/[^/]*$/, "");
    return c.redirect(`${list}?settled=${encodeURIComponent(tx.tranID)}`, 303);
  });

  app.get("/_control/log", (c) => c.json({ deliveries: state.deliveries, ipnEchoes: state.ipnEchoes, requests: state.requests }));

  // The requests the server APIs received, optionally of one operation (?operation=refund).
  app.get("/_control/requests", (c) => {
    const operation = c.req.query("operation");
    if (operation !== undefined && !(operations as readonly string[]).includes(operation)) {
      return c.json({ error: `operation must be one of ${operations.join(", ")}` }, 400);
    }
    return c.json({ requests: operation ? state.requests.filter((r) => r.operation === operation) : state.requests });
  });

  app.post("/_control/faults", async (c) => {
    const body = await jsonBody(c, faults);
    if (body instanceof Response) return body;
    state.fault = { mode: body.mode, delayMs: body.delayMs ?? (body.mode === "slow" ? 10_000 : 0) };
    return c.json({ fault: state.fault });
  });

  // What becomes of the next `count` requests of an operation (or of any): their answer is lost
  // after processing, they are dropped unprocessed, or they answer a Fiuu error code unprocessed.
  app.post("/_control/next", async (c) => {
    const body = await jsonBody(c, next);
    if (body instanceof Response) return body;
    const entry: NextEffect = { id: state.nextId++, operation: body.operation, effect: body.effect, remaining: body.count };
    if (body.effect === "error_code") {
      const described = injectedDesc(body.operation, body.code, body.desc);
      if ("error" in described) return c.json({ error: described.error }, 400);
      entry.code = body.code!;
      entry.desc = described.desc;
    }
    state.next.push(entry);
    return c.json({ next: entry });
  });

  app.get("/_control/next", (c) => c.json({ next: state.next }));

  app.delete("/_control/next", (c) => {
    state.next = [];
    return c.json({ next: state.next });
  });
}
