import type { refunds } from "../../drizzle/schema.js";

export type RefundRow = typeof refunds.$inferSelect;

/** The API's view of a refund. */
export function refundResource(row: RefundRow) {
  return {
    id: row.id,
    object: "refund" as const,
    payment_id: row.paymentId,
    amount: row.amount,
    currency: row.currency,
    reason: row.reason,
    status: row.status,
    gateway: { ref_id: row.refId, refund_id: row.fiuuRefundId },
    failure: row.failureCode || row.failureMessage ? { code: row.failureCode, message: row.failureMessage } : null,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}
