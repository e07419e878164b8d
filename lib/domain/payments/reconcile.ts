import { appendAudit } from "../audit.js";
import type { AppDeps } from "../deps.js";
import { recordEvent } from "../webhooks/events.js";
import { errorName } from "../../core/errors.js";
import { enqueueJob, type Job } from "../job-queue.js";
import type { JobResult } from "../job-queue.js";
import { truncateText } from "../../core/text.js";
import { parseFiuuAmount, toFiuuAmount } from "../../core/money.js";
import { findExpiryDue, findPaymentById, lockPayment } from "./queries.js";
import { paymentResource, type PaymentRow } from "./resource.js";
import { markExpired } from "./statements.js";
import { FiuuProtocolError, FiuuUnavailableError, type RequeryAnswer, type RequeryTransaction } from "../../adapters/fiuu/client.js";
import { applyVerified, type ReportResult } from "./reports.js";
import { requeryForwardEveryMs } from "./requery-queue.js";
import { allows, isExpiryDue, isUnsettled } from "./transitions.js";

// Reconciliation: asking Fiuu (q_by_oid) about payments it has not settled by report, and expiring
// checkouts nobody paid. Every query takes the merchant's one query slot first, shared by all
// replicas through Redis, and is sent once (the client never resends a requery). What Fiuu's
// answers and error codes mean here (FIUU.md §3):
//   a transaction (VrfKey verified)  applied like a report, through applyVerified
//   not found (Q203, Q303, Q00005, StatCode "-")  nobody paid yet: an expired checkout expires
//   busy (Q03, Q00007, Q00008, Q05)  asked again later: 1 min, doubling, at most 30 min
//   Q99                              no query of the merchant for 5 min: the slot key is held that
//                                    long for every replica, and the job waits without losing its place
//   misconfigured or unknown code    logged and counted by the client (FiuuMisconfigured alert);
//                                    asked again every 30 min, never in a loop
//   Q06 (query period over)          no more asking about this payment
//   an answer not believed           (a VrfKey that does not verify, another order, unreadable):
//                                    nothing is changed; asked again in 30 min
//   Fiuu unreachable, 5xx, breaker   asked again with backoff (5 s doubling, at most 15 min)

const second = 1_000;
const minute = 60 * second;
const hour = 60 * minute;
const day = 24 * hour;

/**
 * When payments are asked about. The first requery comes a minute after checkout starts or a
 * pending report (firstRequeryDelayMs); then after half the time since checkout started, between
 * 1 and 30 minutes (1, 2, 4, … min, then every 30 min: FIUU.md §3's "pending and unknown
 * transactions only, about once every 30 minutes"). Until when:
 * - a created payment is asked until its expires_at; then the expiry job asks once more and
 *   decides (not found: expired);
 * - a pending payment every 30 minutes for its first week, then every 6 hours, until 30 days after
 *   checkout started — q_by_oid's window. About 440 queries in all, within the job's 1000 attempts.
 */
export const requerySchedule = {
  minIntervalMs: minute,
  maxIntervalMs: 30 * minute,
  /** After a week still pending, asked only every lateIntervalMs. */
  lateAfterMs: 7 * day,
  lateIntervalMs: 6 * hour,
  /** q_by_oid answers for 30 days (FIUU.md §3); no query after that. */
  windowMs: 30 * day,
  /** A misconfiguration, an unknown code, an answer not believed: asked again after this long. */
  slowRetryMs: 30 * minute,
  /** After Q99, no query of the merchant for this long ("stop all queries ≥ 5 minutes"). */
  blockedMs: 5 * minute,
  /** A result page brings its payment's requery forward at most this often. */
  resultPageEveryMs: requeryForwardEveryMs,
} as const;

/** Redis key: the merchant's query slot. Whoever sets it may send one query; it lapses after FIUU_QUERY_INTERVAL (after Q99, 5 min). */
export const querySlotKey = (merchantId: string) => `fiuu:query-slot:${merchantId}`;
export { bringRequeryForward, resultPageRequeryKey } from "./requery-queue.js";

/** IPN echo: posts a notification back to Fiuu (fields unchanged plus treq=1) until Fiuu takes it. */
export async function runIpnEcho(deps: AppDeps, job: Job): Promise<JobResult> {
  await deps.fiuu.echoIpn(job.payload.fields as Record<string, string>);
  return { done: true };
}

type Slot = { taken: true } | { taken: false; freeInMs: number };

/**
 * Takes the merchant's query slot: Fiuu blocks a merchant that queries more than once per 5 s, so
 * every replica takes the same Redis key before it asks. When it is taken, says when it frees.
 */
async function takeQuerySlot(deps: AppDeps): Promise<Slot> {
  const { merchantId, queryIntervalMs } = deps.config.fiuu;
  const key = querySlotKey(merchantId);
  if ((await deps.redis.set(key, "1", { nx: true, px: queryIntervalMs })) === "OK") return { taken: true };
  const left = await deps.redis.pttl(key);
  // A slot key without expiry (set by hand?) would stop every query for good.
  if (left === -1) await deps.redis.pexpire(key, queryIntervalMs);
  return { taken: false, freeInMs: left > 0 ? left : queryIntervalMs };
}

/** Q99: holds the merchant's query slot for 5 minutes, for every replica, overwriting the slot. */
async function blockQueries(deps: AppDeps): Promise<number> {
  const { merchantId, queryIntervalMs } = deps.config.fiuu;
  const pauseMs = Math.max(requerySchedule.blockedMs, queryIntervalMs);
  try {
    await deps.redis.set(querySlotKey(merchantId), "Q99", { px: pauseMs });
  } catch (error) {
    deps.logger.error({ error: errorName(error) }, "could not hold the query slot after Q99: other replicas may query during the pause");
  }
  return pauseMs;
}

type Asked = { answer: RequeryAnswer } | { later: JobResult } | { windowOver: true };

/**
 * Asks Fiuu about a payment by its order id, within the merchant's query slot. When Fiuu cannot be
 * asked now or its answer decides nothing, answers the job's result instead.
 */
async function ask(deps: AppDeps, payment: PaymentRow, job: Job): Promise<Asked> {
  let slot: Slot;
  try {
    slot = await takeQuerySlot(deps);
  } catch (error) {
    // Without Redis the merchant's rate cannot be kept across replicas, so no query is sent.
    deps.logger.warn({ job_id: job.id, error: errorName(error) }, "Redis unavailable: requery postponed");
    return { later: { retryAt: new Date(deps.now().getTime() + minute), error: "Redis unavailable: the query slot cannot be taken" } };
  }
  // Waiting for the slot is nobody's failure: the job keeps its place in line and its attempts.
  if (!slot.taken) return { later: { waitUntil: new Date(deps.now().getTime() + slot.freeInMs) } };
  try {
    return { answer: await deps.fiuu.requeryByOrder({ orderId: payment.gatewayOrderId, amount: toFiuuAmount(payment.amount) }) };
  } catch (error) {
    return refused(deps, payment, error, job);
  }
}

const jitter = (ms: number) => Math.floor(Math.random() * (ms / 4));

/** What a query that taught nothing means for the job (the table at the top of this file). */
async function refused(deps: AppDeps, payment: PaymentRow, error: unknown, job: Job): Promise<Asked> {
  const now = deps.now().getTime();
  if (error instanceof FiuuUnavailableError) {
    const delay = Math.min(15 * minute, 5 * second * 2 ** Math.min(job.attempts, 8));
    return { later: { retryAt: new Date(now + delay), error: `${error.name}: ${error.message}` } };
  }
  if (!(error instanceof FiuuProtocolError)) throw error;
  const why = `${error.name}: ${error.message}`;
  const log = { job_id: job.id, payment_id: payment.id, code: error.code };
  switch (error.refusal) {
    case "blocked": {
      const pauseMs = await blockQueries(deps);
      deps.logger.warn({ ...log, pause_ms: pauseMs }, "Fiuu blocked queries (Q99): no query of the merchant for 5 minutes");
      return { later: { waitUntil: new Date(now + pauseMs) } };
    }
    case "busy": {
      const delay = Math.min(requerySchedule.maxIntervalMs, minute * 2 ** Math.min(Math.max(job.attempts - 1, 0), 5));
      return { later: { retryAt: new Date(now + delay + jitter(delay)), error: why } };
    }
    case "window_over":
      return { windowOver: true };
    default:
      // Misconfigured or unknown (the client logged and counted it), or no code: an answer that
      // cannot be believed. Only a fix helps, so only slowly again: never a loop, and the slot
      // stays free for other payments the other 29 minutes.
      if (error.code === undefined) deps.logger.warn({ ...log, error: error.message }, "requery answer not believed; asking again in 30 minutes");
      return { later: { retryAt: new Date(now + requerySchedule.slowRetryMs + jitter(minute)), error: why } };
  }
}

/** Applies a requery answer that names a transaction, with the answer's own facts. */
async function applyAnswer(deps: AppDeps, payment: PaymentRow, answer: RequeryTransaction, jobId: number): Promise<ReportResult> {
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
  return Object.fromEntries(
    Object.entries(fields)
      .slice(0, 40)
      .map(([name, value]) => [truncateText(name, 64), truncateText(value, 255)]),
  );
}

const isOpen = isUnsettled;
const ageOf = (payment: PaymentRow, now: Date) => now.getTime() - (payment.checkoutStartedAt ?? payment.createdAt).getTime();

/** The next requery on requerySchedule; none once q_by_oid's window is over. */
function nextRequeryAt(payment: PaymentRow, now: Date): Date | undefined {
  const age = ageOf(payment, now);
  if (age >= requerySchedule.windowMs) return undefined;
  const { minIntervalMs, maxIntervalMs, lateAfterMs, lateIntervalMs } = requerySchedule;
  const pause = age >= lateAfterMs ? lateIntervalMs : Math.min(maxIntervalMs, Math.max(minIntervalMs, Math.floor(age / 2)));
  return new Date(now.getTime() + pause);
}

/**
 * Reconcile: asks Fiuu about a payment whose checkout started and that is still created or
 * pending, and applies a verified answer through the same state machine as Fiuu's reports. Until
 * Fiuu settles it, the job comes back on requerySchedule; an outage of Fiuu only delays it.
 */
export async function runRequery(deps: AppDeps, job: Job): Promise<JobResult> {
  const payment = await loadPayment(deps, String(job.payload.paymentId));
  if (!payment || !isOpen(payment.status)) return { done: true };
  const now = deps.now();
  // A created payment past its time is the expiry job's: it asks once more and decides.
  if (isExpiryDue(payment, now)) return { done: true };
  if (ageOf(payment, now) >= requerySchedule.windowMs) return stopReconciling(deps, payment, "its 30-day query window is over");
  const asked = await ask(deps, payment, job);
  if ("later" in asked) return asked.later;
  if ("windowOver" in asked) return stopReconciling(deps, payment, "Fiuu says its query period is over (Q06)");
  const { answer } = asked;
  const status = answer.found ? ((await applyAnswer(deps, payment, answer, job.id)).payment?.status ?? payment.status) : payment.status;
  if (!isOpen(status)) return { done: true };
  const next = nextRequeryAt(payment, deps.now());
  if (!next) return stopReconciling(deps, payment, "its 30-day query window is over");
  const learnt = answer.found ? `Fiuu reports ${answer.statCode}` : `Fiuu knows no transaction yet (${answer.code || "StatCode -"})`;
  return { retryAt: next, error: `${learnt}; asking again later` };
}

function stopReconciling(deps: AppDeps, payment: PaymentRow, why: string): JobResult {
  deps.logger.warn({ payment_id: payment.id, status: payment.status }, `payment still unsettled and ${why}: reconciliation stops`);
  return { done: true };
}

/**
 * Expiry of one payment past its expires_at: Fiuu is asked once (the shopper may have paid at the
 * last second); a transaction Fiuu knows (00, 22 or 11) decides the payment's fate, and Fiuu's
 * "not found" expires it. A payment never sent to Fiuu expires without asking.
 */
export async function runExpire(deps: AppDeps, job: Job): Promise<JobResult> {
  const payment = await loadPayment(deps, String(job.payload.paymentId));
  if (!payment || !allows(payment.status, "expire")) return { done: true };
  if (payment.checkoutStartedAt) {
    const asked = await ask(deps, payment, job);
    if ("later" in asked) return asked.later;
    if ("answer" in asked && asked.answer.found) {
      await applyAnswer(deps, payment, asked.answer, job.id);
      return { done: true };
    }
    // Not found, or (Q06) no longer askable: nobody paid that Fiuu can tell. Should a signed report
    // of a success still come, it moves the expired payment to succeeded (late_success).
    if ("windowOver" in asked) deps.logger.warn({ payment_id: payment.id }, "Fiuu's query period is over (Q06); expiring the unpaid payment");
  }
  await expirePayment(deps, payment.id, job.id);
  return { done: true };
}

async function expirePayment(deps: AppDeps, id: string, jobId: number) {
  const now = deps.now();
  const expired = await deps.database.db.transaction(async (tx) => {
    const row = await lockPayment(tx, id);
    if (!row || !allows(row.status, "expire")) return undefined;
    const updated = await markExpired(tx, id, now);
    await recordEvent(tx, deps.config.webhooks.urls, {
      type: "payment.expired",
      paymentId: id,
      data: paymentResource(deps, updated!, { masked: true }),
      now,
    });
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
  const due = await findExpiryDue(deps.database.db, now, limit);
  for (const { id } of due) {
    await enqueueJob(deps.database.db, { kind: "expire", payload: { paymentId: id }, dedupeKey: `expire:${id}`, runAt: now, maxAttempts: 1000 });
  }
  return due.length;
}

async function loadPayment(deps: AppDeps, id: string): Promise<PaymentRow | undefined> {
  return findPaymentById(deps.database.db, id);
}
