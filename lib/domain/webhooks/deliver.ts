import { inArray } from "drizzle-orm";
import { events } from "../../../drizzle/schema.js";
import type { Config } from "../../core/config.js";
import type { AppDeps } from "../deps.js";
import { runPool } from "../../core/pool.js";
import { claimDueDeliveries, recordDelivery, releaseDelivery, type ClaimedDelivery, type DeliveryUpdate } from "./queue.js";
import type { AddressLookup } from "./receivers.js";
import { sendWebhook, type AttemptResult } from "./send.js";
import { webhookBody, webhookSigningKey } from "./sign.js";

/** Longest wait between two attempts, whatever the backoff or a receiver's Retry-After asks. */
export const maxRetryDelayMs = 12 * 3_600_000;
/** Jitter on top of the backoff: up to this fraction more, so receivers that failed together are not retried together. */
const jitterFraction = 0.25;

/** Values of webhook_deliveries_total{outcome}: one per attempt. */
export type DeliveryOutcome = "delivered" | "retry" | "failed" | "refused";

export interface DeliveryBatchResult {
  claimed: number;
  delivered: number;
  retried: number;
  failed: number;
}

export interface DeliveryBatchOptions {
  /** Most deliveries claimed in one batch (default 20). */
  limit?: number;
  /** Sends at once within the batch (default 8). */
  concurrency?: number;
  /** How long a claim holds its rows; default covers every send of the batch at WEBHOOK_TIMEOUT, plus 30 s. */
  lockMs?: number;
  /** When aborted, deliveries claimed but not yet started are released instead of sent. */
  signal?: AbortSignal;
  /** Jitter source (default Math.random); tests pass a constant. */
  random?: () => number;
  /** Host name resolution for the address guard (default node:dns). */
  lookup?: AddressLookup;
}

/**
 * The wait after failed attempt number `attempt` (1-based): WEBHOOK_RETRY_DELAY doubled per attempt,
 * up to maxRetryDelayMs, plus up to 25 % jitter. The jitter only adds, so each wait is at least
 * as long as the one before.
 */
export function webhookRetryDelay(attempt: number, baseMs: number, random: () => number = Math.random): number {
  const cap = Math.max(maxRetryDelayMs, baseMs);
  const grown = Math.min(cap, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 40));
  return Math.round(grown * (1 + jitterFraction * random()));
}

/**
 * What an attempt means for its row: delivered; failed for good (410 Gone, a refused address, or
 * the last of 1 + WEBHOOK_RETRY_ATTEMPTS attempts); else pending again after the backoff, or after
 * the receiver's Retry-After when that is longer.
 */
export function nextDeliveryStep(
  result: AttemptResult,
  attempts: number,
  webhooks: Pick<Config["webhooks"], "retryAttempts" | "retryDelayMs">,
  now: Date,
  random: () => number = Math.random,
): { update: DeliveryUpdate; outcome: DeliveryOutcome } {
  switch (result.outcome) {
    case "delivered":
      return { update: { status: "delivered", statusCode: result.statusCode }, outcome: "delivered" };
    case "refused":
      return { update: { status: "failed", statusCode: null, error: result.error }, outcome: "refused" };
    case "gone":
      return { update: { status: "failed", statusCode: result.statusCode, error: result.error }, outcome: "failed" };
    case "error": {
      if (attempts > webhooks.retryAttempts) {
        const error = `${result.error} (gave up after ${attempts} attempt${attempts === 1 ? "" : "s"})`;
        return { update: { status: "failed", statusCode: result.statusCode, error }, outcome: "failed" };
      }
      const backoff = webhookRetryDelay(attempts, webhooks.retryDelayMs, random);
      const delay = Math.min(Math.max(backoff, result.retryAfterMs ?? 0), Math.max(maxRetryDelayMs, backoff));
      return {
        update: { status: "pending", statusCode: result.statusCode, error: result.error, nextAttemptAt: new Date(now.getTime() + delay) },
        outcome: "retry",
      };
    }
  }
}

/**
 * Claims the due deliveries, sends each one (outside any transaction) and records its outcome under
 * the claim's fence. Every attempt of an event sends the same body with the same webhook-id; only
 * webhook-timestamp and the signature change. A failure to record is thrown after the batch (the
 * row's lock then runs out and the delivery is tried again: at least once, never lost).
 */
export async function runDeliveryBatch(deps: AppDeps, options: DeliveryBatchOptions = {}): Promise<DeliveryBatchResult> {
  const result: DeliveryBatchResult = { claimed: 0, delivered: 0, retried: 0, failed: 0 };
  const { webhooks, environment } = deps.config;
  if (options.signal?.aborted) return result;
  const key = webhookSigningKey(webhooks.secret);
  const limit = options.limit ?? 20;
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const lockMs = options.lockMs ?? (Math.ceil(limit / concurrency) + 1) * webhooks.timeoutMs + 30_000;
  const random = options.random ?? Math.random;
  const db = deps.database.db;

  const claims = await claimDueDeliveries(db, { limit, lockMs, now: deps.now() });
  result.claimed = claims.length;
  if (claims.length === 0) return result;
  const eventRows = await db
    .select()
    .from(events)
    .where(inArray(events.id, [...new Set(claims.map((c) => c.eventId))]));
  const eventsById = new Map(eventRows.map((e) => [e.id, e]));
  const recordErrors: unknown[] = [];

  const deliverOne = async (claim: ClaimedDelivery) => {
    const event = eventsById.get(claim.eventId);
    const sentAt = deps.now();
    const attempt: AttemptResult = event
      ? await sendWebhook({
          receiver: claim.receiver,
          id: event.id,
          body: webhookBody(event),
          key,
          timestampSeconds: Math.floor(sentAt.getTime() / 1000),
          timeoutMs: webhooks.timeoutMs,
          environment,
          lookup: options.lookup,
          connections: deps.webhookConnections,
          now: sentAt,
        })
      : { outcome: "error", reason: "connection", statusCode: null, error: "event not found" };
    const now = deps.now();
    const step = nextDeliveryStep(attempt, claim.attempts, webhooks, now, random);
    deps.metrics.webhookDeliveries.inc({ outcome: step.outcome });
    if (step.update.status === "delivered") result.delivered++;
    else if (step.update.status === "pending") result.retried++;
    else result.failed++;
    if (step.outcome !== "delivered") {
      // Ids, host and status only: bodies can carry customer data, receiver URLs can carry tokens.
      const fields = {
        event_id: claim.eventId,
        receiver_host: hostOf(claim.receiver),
        status: attempt.outcome === "refused" ? null : attempt.statusCode,
        reason: attempt.outcome === "error" ? attempt.reason : attempt.outcome,
        attempt: claim.attempts,
        outcome: step.outcome,
      };
      if (step.update.status === "pending")
        deps.logger.info({ ...fields, retry_at: step.update.nextAttemptAt.toISOString() }, "webhook delivery failed; will retry");
      else deps.logger.warn(fields, "webhook delivery failed for good");
    }
    try {
      if (!(await recordDelivery(db, claim, step.update, now))) {
        deps.logger.warn(
          { event_id: claim.eventId, receiver_host: hostOf(claim.receiver) },
          "webhook delivery outcome not recorded: the claim was lost",
        );
      }
    } catch (error) {
      recordErrors.push(error);
    }
  };

  const queue = await runPool(claims, concurrency, deliverOne, options.signal);

  // Stopped before these were sent: hand them back so another worker takes them now, not after the lock.
  for (const claim of queue) {
    try {
      await releaseDelivery(db, claim, deps.now());
    } catch (error) {
      recordErrors.push(error);
    }
  }
  if (recordErrors.length > 0) throw recordErrors[0];
  return result;
}

function hostOf(receiver: string): string {
  try {
    return new URL(receiver).host;
  } catch {
    return "(invalid URL)";
  }
}
