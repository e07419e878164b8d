import type { AppDeps } from "../deps.js";
import type { Database } from "../../adapters/db/client.js";
import { errorName } from "../../core/errors.js";
import { enqueueJob, type NewJob } from "../job-queue.js";

// Asking for a payment's requery: the one pending requery job per payment, and bringing it forward
// when a shopper waits, at most once per payment per 5 minutes.

/** The first requery after a checkout starts or a payment turns pending. */
export const firstRequeryDelayMs = 60_000;

/** How often a payment's requery may be brought forward (result page, a return's 11). */
export const requeryForwardEveryMs = 5 * 60_000;

/**
 * Schedules the reconcile requery of a payment, one pending per payment whoever asks (checkout
 * start, a pending report, a report that failed its signature). Its attempts are bounded by time
 * (lib/domain/payments/reconcile.ts), not by count: waiting for Fiuu's query slot is not a failure.
 */
export async function enqueueRequery(tx: Pick<Database, "execute">, paymentId: string, runAt: Date, options: { sooner?: boolean } = {}) {
  await enqueueJob(tx, requeryJob(paymentId, runAt, options));
}

/** The requery job enqueueRequery adds, for jobInsert with a caller's other writes. */
export function requeryJob(paymentId: string, runAt: Date, options: { sooner?: boolean } = {}): NewJob {
  return { kind: "requery", payload: { paymentId }, dedupeKey: `requery:${paymentId}`, runAt, maxAttempts: 1000, sooner: options.sooner };
}

/** Redis key: set for 5 min when a payment's requery was brought forward. */
export const resultPageRequeryKey = (paymentId: string) => `fiuu:requery-forward:${paymentId}`;

/**
 * A shopper is waiting (the result page, a return's 11): brings the payment's requery forward to
 * now, at most once per payment per 5 minutes (a Redis SET NX PX key), and not at all when Redis is
 * down. It joins the line at now, so requeries and expiries due earlier still go first. True when
 * brought forward.
 */
export async function bringRequeryForward(deps: AppDeps, paymentId: string): Promise<boolean> {
  let first: boolean;
  try {
    first = (await deps.redis.set(resultPageRequeryKey(paymentId), "1", { nx: true, px: requeryForwardEveryMs })) === "OK";
  } catch (error) {
    deps.logger.debug({ payment_id: paymentId, error: errorName(error) }, "Redis unavailable: requery not brought forward");
    return false;
  }
  if (first) await enqueueRequery(deps.database.db, paymentId, deps.now(), { sooner: true });
  return first;
}
