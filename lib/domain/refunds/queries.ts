import { asc, eq } from "drizzle-orm";
import { refunds, refundStatuses } from "../../../drizzle/schema.js";
import type { Database } from "../../adapters/db/client.js";
import { ApiError } from "../../core/errors.js";
import { getPayment } from "../payments/queries.js";
import type { RefundRow } from "./resource.js";

export { refundStatuses };

/** A payment's refunds, oldest first; 404 for an unknown payment. */
export async function listPaymentRefunds(db: Database, paymentId: string): Promise<RefundRow[]> {
  await getPayment(db, paymentId);
  return db.select().from(refunds).where(eq(refunds.paymentId, paymentId)).orderBy(asc(refunds.id));
}

/** A refund by id, or 404. */
export async function getRefund(db: Database, id: string): Promise<RefundRow> {
  const [row] = await db.select().from(refunds).where(eq(refunds.id, id)).limit(1);
  if (!row) throw new ApiError("not_found", `No refund ${id}.`);
  return row;
}
