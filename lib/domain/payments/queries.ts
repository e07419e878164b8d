import { and, desc, eq, lt, type SQL } from "drizzle-orm";
import { payments, paymentStatuses, type PaymentStatus } from "../../../drizzle/schema.js";
import type { Principal } from "../deps.js";
import { hashSecret, safeEqual } from "../../core/crypto.js";
import type { Database } from "../../adapters/db/client.js";
import { ApiError } from "../../core/errors.js";
import type { PaymentRow } from "./resource.js";

export { paymentStatuses };

/**
 * The payment a caller may see: any, for a service or admin token; only its own, for a client
 * secret (compared as hashes in constant time). A wrong secret reads as not found, so a checkout
 * page cannot probe for other payments' ids.
 */
export async function findPaymentFor(db: Database, id: string, principal: Principal): Promise<PaymentRow> {
  const [row] = await db.select().from(payments).where(eq(payments.id, id)).limit(1);
  if (principal.kind === "client" && row && !safeEqual(hashSecret(principal.secret), row.clientSecretHash)) {
    throw notFound(id);
  }
  if (!row) throw notFound(id);
  return row;
}

/** A payment by id, or undefined. */
export async function findPaymentById(db: Database, id: string): Promise<PaymentRow | undefined> {
  const [row] = await db.select().from(payments).where(eq(payments.id, id)).limit(1);
  return row;
}

export const notFound = (id: string) => new ApiError("not_found", `No payment ${id}.`);

/** Payments newest first, filtered by order and status, a page at a time (cursor = last id seen). */
export async function listPayments(
  db: Database,
  query: { order_id?: string; status?: PaymentStatus; limit: number; starting_after?: string },
) {
  const conditions: SQL[] = [];
  if (query.order_id) conditions.push(eq(payments.orderId, query.order_id));
  if (query.status) conditions.push(eq(payments.status, query.status));
  if (query.starting_after) conditions.push(lt(payments.id, query.starting_after));
  const rows = await db
    .select()
    .from(payments)
    .where(conditions.length ? and(...conditions) : undefined)
    .orderBy(desc(payments.id))
    .limit(query.limit + 1);
  return { rows: rows.slice(0, query.limit), hasMore: rows.length > query.limit };
}
