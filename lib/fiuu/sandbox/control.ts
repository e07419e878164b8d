import type { Context, Hono } from "hono";
import { z } from "zod";
import { applyOutcome, deliver, malaysiaTime, sendReports, signedRefundFields, type SandboxState } from "./state.js";

// Test control: what a tester does in Fiuu's portal or waits for in real life (a pending payment
// resolving, a refund being processed, an outage), as JSON routes under /_control/.

// `report: false` settles without telling the merchant, as when Fiuu's reports are lost: only a
// requery can then find out.
const settleTransaction = z.object({ status: z.enum(["00", "11"]), report: z.boolean().default(true) });
const settleRefund = z.object({ status: z.enum(["00", "11", "processing"]) });
const faults = z.object({ mode: z.enum(["none", "down", "slow", "error"]), delayMs: z.number().int().min(0).max(600_000).optional() });

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

  // A refund is processed; with a notify_url on the request, Fiuu posts the outcome there.
  // FIUU.md does not spell out that notice: the sandbox sends the refund answer's fields with the
  // final Status, signed like an answer.
  app.post("/_control/refunds/:refId", async (c) => {
    const body = await jsonBody(c, settleRefund);
    if (body instanceof Response) return body;
    const refund = state.refunds.get(c.req.param("refId"));
    if (!refund) return c.json({ error: "no such refund" }, 404);
    if (refund.state !== "pending" && refund.state !== "processing") {
      return c.json({ error: `the refund is already ${refund.state}` }, 409);
    }
    refund.state = body.status === "00" ? "success" : body.status === "11" ? "rejected" : "processing";
    refund.reason = body.status === "11" ? "Rejected by the bank (sandbox)" : "";
    refund.updatedAt = malaysiaTime(state.now());
    if (body.status === "processing" || !refund.notifyUrl) return c.json({ refund });
    const delivery = await deliver(state, "refund_notice", refund.notifyUrl, signedRefundFields(state, refund, body.status));
    return c.json({ refund, delivery });
  });

  app.get("/_control/log", (c) => c.json({ deliveries: state.deliveries, ipnEchoes: state.ipnEchoes }));

  app.post("/_control/faults", async (c) => {
    const body = await jsonBody(c, faults);
    if (body instanceof Response) return body;
    state.fault = { mode: body.mode, delayMs: body.delayMs ?? (body.mode === "slow" ? 10_000 : 0) };
    return c.json({ fault: state.fault });
  });
}
