import { and, eq, lte } from "drizzle-orm";
import { payments } from "../../drizzle/schema.js";
import { appendAudit } from "../audit.js";
import type { AppDeps } from "../context.js";
import { recordEvent } from "../events.js";
import { enqueueJob, type Job } from "../jobs/queue.js";
import type { JobResult } from "../jobs/loop.js";
import { parseFiuuAmount, toFiuuAmount } from "../money.js";
import { paymentResource, type PaymentRow } from "./resource.js";
import { FiuuProtocolError, FiuuUnavailableError, type RequeryAnswer } from "../fiuu/client.js";
import { applyVerified, type ReportResult } from "./reports.js";

const hour = 3_600_000;
/** How long a payment whose checkout started is reconciled before it is left to the alerts. */
const reconcileForMs = 24 * hour;

/** IPN echo: posts a notification back to Fiuu (fields unchanged plus treq=1) until Fiuu takes it. */
export async function runIpnEcho(deps: AppDeps, job: Job): Promise<JobResult> {
  await deps.fiuu.echoIpn(job.payload.fields as Record<string, string>);
  return { done: true };
}

/**
 * Takes the merchant's query slot: Fiuu blocks a merchant that queries more than once per 5 s, so
 * every replica takes the same Redis key before it asks. Without Redis no requery is sent.
 */
async function takeQuerySlot(deps: AppDeps): Promise<boolean> {
  const { merchantId, queryIntervalMs } = deps.config.fiuu;
  return (await deps.redis.set(`fiuu:query-slot:${merchantId}`, "1", { nx: true, px: queryIntervalMs })) === "OK";
}

const retrySoon = (deps: AppDeps, why: string): JobResult => ({
  retryAt: new Date(deps.now().getTime() + deps.config.fiuu.queryIntervalMs + Math.floor(Math.random() * 1000)),
  error: why,
});

/**
 * Asks Fiuu about a payment by its order id, within the merchant's query slot. When Fiuu cannot be
 * asked now (slot taken, Fiuu unreachable or refusing), answers the job's result instead: try later.
 */
async function requery(deps: AppDeps, payment: PaymentRow, job: Job): Promise<{ answer: RequeryAnswer } | { later: JobResult }> {
  if (!(await takeQuerySlot(deps))) return { later: retrySoon(deps, "waiting for the merchant's query slot") };
  try {
    return { answer: await deps.fiuu.requeryByOrder({ orderId: payment.gatewayOrderId, amount: toFiuuAmount(payment.amount) }) };
  } catch (error) {
    return { later: backOff(deps, error, job) };
  }
}

/** Applies a requery answer that names a transaction; undefined when Fiuu knows no transaction yet. */
async function applyAnswer(deps: AppDeps, payment: PaymentRow, answer: RequeryAnswer, jobId: number): Promise<ReportResult | undefined> {
  // "Not found" (no TranID) says nothing about money: keep waiting rather than fail the payment.
  if (!answer.tranId) return undefined;
  const amount = parseFiuuAmount(answer.amount);
  if (amount === undefined) throw new FiuuProtocolError(`requery answer amount "${answer.amount}" is not a Fiuu amount`);
  return applyVerified(deps, {
    kind: "requery",
    orderId: payment.gatewayOrderId,
    status: answer.statCode,
    amount,
    currency: answer.currency,
    tranId: answer.tranId,
    // A requery answer is Fiuu's own answer to this service (its VrfKey verified): all of it is believed.
    details: {
      appcode: answer.fields.AppCode || answer.fields.appcode || undefined,
      paydate: answer.paydate,
      channel: answer.channel || undefined,
      errorCode: answer.errorCode || undefined,
      errorDesc: answer.errorDesc || undefined,
    },
    stored: storableAnswerFields(answer.fields),
    requestId: `job-${jobId}`,
  });
}

/** A requery answer's fields as stored: each cut to 255 characters, at most 40 of them. */
function storableAnswerFields(fields: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).slice(0, 40).map(([name, value]) => [name.slice(0, 64), value.slice(0, 255)]));
}

/**
 * The next requery: after half the time since checkout started, between 1 min and 1 h (so about
 * 1, 2, 4, … min, then hourly), and none once 24 h have passed.
 */
function nextRequeryAt(payment: PaymentRow, now: Date): Date | undefined {
  const age = now.getTime() - (payment.checkoutStartedAt ?? payment.createdAt).getTime();
  if (age >= reconcileForMs) return undefined;
  return new Date(now.getTime() + Math.min(hour, Math.max(60_000, Math.floor(age / 2))));
}

/**
 * Reconcile: asks Fiuu about a payment whose checkout started and that is still created or
 * pending, and applies a verified answer through the same state machine as Fiuu's reports.
 * Until Fiuu settles it, the job comes back on the schedule; an outage of Fiuu only delays it.
 */
export async function runRequery(deps: AppDeps, job: Job): Promise<JobResult> {
  const payment = await loadPayment(deps, String(job.payload.paymentId));
  if (!payment || (payment.status !== "created" && payment.status !== "pending")) return { done: true };
  const asked = await requery(deps, payment, job);
  if ("later" in asked) return asked.later;
  const { answer } = asked;
  const result = await applyAnswer(deps, payment, answer, job.id);
  const status = result?.payment?.status ?? payment.status;
  if (status !== "created" && status !== "pending") return { done: true };
  const next = nextRequeryAt(payment, deps.now());
  if (!next) {
    deps.logger.warn({ payment_id: payment.id }, "payment still unsettled 24 h after checkout; reconciliation stops");
    return { done: true };
  }
  return { retryAt: next, error: `Fiuu reports ${answer.statCode || "no transaction"}; asking again later` };
}

/**
 * Expiry of one payment past its expires_at: Fiuu is asked once (the shopper may have paid at the
 * last second), then the payment expires if Fiuu knows no payment for it.
 */
export async function runExpire(deps: AppDeps, job: Job): Promise<JobResult> {
  const payment = await loadPayment(deps, String(job.payload.paymentId));
  if (!payment || payment.status !== "created") return { done: true };
  if (payment.checkoutStartedAt) {
    const asked = await requery(deps, payment, job);
    if ("later" in asked) return asked.later;
    // A transaction Fiuu knows (00, 22 or 11) decides the payment's fate; only "none" expires it.
    if (await applyAnswer(deps, payment, asked.answer, job.id)) return { done: true };
  }
  await expirePayment(deps, payment.id, job.id);
  return { done: true };
}

async function expirePayment(deps: AppDeps, id: string, jobId: number) {
  const now = deps.now();
  const expired = await deps.database.db.transaction(async (tx) => {
    const [row] = await tx.select().from(payments).where(eq(payments.id, id)).for("update").limit(1);
    if (!row || row.status !== "created") return undefined;
    const [updated] = await tx.update(payments).set({ status: "expired", updatedAt: now }).where(eq(payments.id, id)).returning();
    await recordEvent(tx, deps.config.webhooks.urls, { type: "payment.expired", paymentId: id, data: paymentResource(deps, updated!, { masked: true }), now });
    await appendAudit(tx, { actor: "system:expire", action: "payment.expired", entityType: "payment", entityId: id, requestId: `job-${jobId}` });
    return updated;
  });
  if (expired) {
    deps.metrics.payments.inc({ status: "expired", channel: expired.channel ?? "any" });
    deps.metrics.paymentEvents.inc({ type: "payment.expired" });
  }
}

/**
 * The expiry sweep: one expire job per created payment past its expires_at (deduplicated, so any
 * number of replicas may sweep at once). Returns how many payments it looked at.
 */
export async function sweepExpiredPayments(deps: AppDeps, limit = 200): Promise<number> {
  const now = deps.now();
  const due = await deps.database.db
    .select({ id: payments.id })
    .from(payments)
    .where(and(eq(payments.status, "created"), lte(payments.expiresAt, now)))
    .orderBy(payments.expiresAt)
    .limit(limit);
  for (const { id } of due) {
    await enqueueJob(deps.database.db, { kind: "expire", payload: { paymentId: id }, dedupeKey: `expire:${id}`, runAt: now, maxAttempts: 1000 });
  }
  return due.length;
}

async function loadPayment(deps: AppDeps, id: string): Promise<PaymentRow | undefined> {
  const [row] = await deps.database.db.select().from(payments).where(eq(payments.id, id)).limit(1);
  return row;
}

/** Fiuu could not answer (or refused to): nothing was decided, so the job backs off and tries again. */
function backOff(deps: AppDeps, error: unknown, job: Job): JobResult {
  if (!(error instanceof FiuuUnavailableError) && !(error instanceof FiuuProtocolError)) throw error;
  const delay = Math.min(15 * 60_000, 5_000 * 2 ** Math.min(job.attempts, 8));
  return { retryAt: new Date(deps.now().getTime() + delay), error: `${error.name}: ${error.message}` };
}



