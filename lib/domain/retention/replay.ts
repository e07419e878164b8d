import type { Database } from "../../adapters/db/client.js";
import { findPaymentErasedAt } from "../payments/queries.js";

/**
 * An idempotent answer as it may be replayed now: a payment (or refund) answer whose payment's
 * personal data has been erased since is replayed with `customer: null` and `erased_at` (or
 * `beneficiary: null`), so Redis can never hand back what the database no longer holds. Returns
 * the body unchanged when there is nothing to remove (one indexed read when there may be).
 */
export async function withoutErasedData(db: Database, body: string, contentType: string | null): Promise<string> {
  if (!contentType?.includes("json")) return body;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(body) as Record<string, unknown>;
  } catch {
    return body;
  }
  if (!parsed || typeof parsed !== "object") return body;
  const paymentId =
    parsed.object === "payment" && parsed.customer != null
      ? parsed.id
      : parsed.object === "refund" && parsed.beneficiary != null
        ? parsed.payment_id
        : undefined;
  if (typeof paymentId !== "string") return body;
  const row = await findPaymentErasedAt(db, paymentId);
  if (!row?.erasedAt) return body;
  if (parsed.object === "payment") return JSON.stringify({ ...parsed, customer: null, erased_at: row.erasedAt.toISOString() });
  return JSON.stringify({ ...parsed, beneficiary: null });
}
