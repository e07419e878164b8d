import { eq } from "drizzle-orm";
import { refunds } from "../../../drizzle/schema.js";
import { appendAudit } from "../audit.js";
import type { AppDeps } from "../deps.js";
import { recordEvent } from "../webhooks/events.js";
import { lockPaymentRow } from "../payments/queries.js";
import { releaseRefund, settleRefund } from "../payments/statements.js";
import { refundResource, type RefundRow } from "./resource.js";

export interface RefundOutcome {
  status: "succeeded" | "failed" | "pending";
  fiuuRefundId?: string;
  failureCode?: string;
  failureMessage?: string;
  /** Who said so: the refund API's answer, Fiuu's notice, or the status poll. */
  source: "answer" | "notice" | "poll";
  requestId?: string;
}

/**
 * Records what Fiuu says of a pending refund, once: a refund that is already final is left alone.
 * The payment row is locked first (as refund creation does), then the refund; a success adds to
 * the payment's amount_refunded, a failure gives its amount back to the refundable rest.
 */
export async function applyRefundOutcome(deps: AppDeps, refundId: string, outcome: RefundOutcome): Promise<RefundRow> {
  const now = deps.now();
  const { row, changed } = await deps.database.db.transaction(async (tx) => {
    const [owner] = await tx.select({ paymentId: refunds.paymentId }).from(refunds).where(eq(refunds.id, refundId)).limit(1);
    if (!owner) throw new Error(`refund ${refundId} does not exist`);
    await lockPaymentRow(tx, owner.paymentId);
    const [refund] = await tx.select().from(refunds).where(eq(refunds.id, refundId)).for("update").limit(1);
    if (!refund) throw new Error(`refund ${refundId} does not exist`);
    if (refund.status !== "pending" || outcome.status === "pending") {
      if (outcome.fiuuRefundId && !refund.fiuuRefundId) {
        const [updated] = await tx
          .update(refunds)
          .set({ fiuuRefundId: outcome.fiuuRefundId, updatedAt: now })
          .where(eq(refunds.id, refundId))
          .returning();
        return { row: updated!, changed: false };
      }
      return { row: refund, changed: false };
    }
    const [updated] = await tx
      .update(refunds)
      .set({
        status: outcome.status,
        fiuuRefundId: outcome.fiuuRefundId ?? refund.fiuuRefundId,
        failureCode: outcome.status === "failed" ? (outcome.failureCode ?? null) : null,
        failureMessage: outcome.status === "failed" ? (outcome.failureMessage ?? null) : null,
        updatedAt: now,
      })
      .where(eq(refunds.id, refundId))
      .returning();
    if (outcome.status === "succeeded") await settleRefund(tx, refund.paymentId, refund.amount, now);
    else await releaseRefund(tx, refund.paymentId, refund.amount, now);
    await recordEvent(tx, deps.config.webhooks.urls, {
      type: outcome.status === "succeeded" ? "refund.succeeded" : "refund.failed",
      paymentId: refund.paymentId,
      refundId,
      data: refundResource(updated!),
      now,
    });
    await appendAudit(tx, {
      actor: `fiuu:refund_${outcome.source}`,
      action: `refund.${outcome.status}`,
      entityType: "refund",
      entityId: refundId,
      requestId: outcome.requestId,
      data: { payment_id: refund.paymentId, amount: refund.amount, failure_code: outcome.failureCode ?? null },
    });
    return { row: updated!, changed: true };
  });
  if (changed) {
    deps.metrics.refunds.inc({ status: row.status });
    deps.metrics.paymentEvents.inc({ type: `refund.${row.status}` });
  }
  return row;
}
