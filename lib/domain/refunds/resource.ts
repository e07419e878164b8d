import type { refunds } from "../../../drizzle/schema.js";

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
    // Masked: the account's last 4 digits only; the name and number stay encrypted at rest.
    beneficiary: row.beneficiaryMasked
      ? {
          bank_code: row.beneficiaryMasked.bank_code,
          country: row.beneficiaryMasked.country,
          account_number: `****${row.beneficiaryMasked.account_number_last4}`,
        }
      : null,
    failure: row.failureCode || row.failureMessage ? { code: row.failureCode, message: row.failureMessage } : null,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}
