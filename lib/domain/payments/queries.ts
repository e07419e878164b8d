import { and, desc, eq, inArray, lte, ne } from "drizzle-orm";
import { payments, paymentStatuses, type PaymentStatus } from "../../../drizzle/schema.js";
import type { Principal } from "../deps.js";
import { hashSecret, safeEqual } from "../../core/crypto.js";
import { queryRows, type Database } from "../../adapters/db/client.js";
import { rowOf } from "../../adapters/db/rows.js";
import { ApiError } from "../../core/errors.js";
import { afterCursor, fetchLimit, toPage, type Page, type PageQuery } from "../paging.js";
import type { PaymentRow } from "./resource.js";
import { paymentByGatewayOrderWithVersion, paymentLockByGatewayOrder } from "./statements.js";
import { orderHoldingStatuses } from "./transitions.js";

export { paymentStatuses };
export type { PaymentStatus };

export const notFound = (id: string) => new ApiError("not_found", `No payment ${id}.`);

/**
 * Whether the caller may see this payment: any, for a service or admin token; only its own, for a
 * client secret (compared as hashes in constant time).
 */
export function visibleTo(row: PaymentRow, principal: Principal): boolean {
  return principal.kind !== "client" || safeEqual(hashSecret(principal.secret), row.clientSecretHash);
}

/**
 * The payment a caller may see (visibleTo), or 404. A wrong secret reads as not found, so a
 * checkout page cannot probe for other payments' ids.
 */
export function visibleOr404(row: PaymentRow | undefined, id: string, principal: Principal): PaymentRow {
  if (!row || !visibleTo(row, principal)) throw notFound(id);
  return row;
}

/** The payment a caller may see (visibleOr404). */
export async function findPaymentFor(db: Database, id: string, principal: Principal): Promise<PaymentRow> {
  return visibleOr404(await findPaymentById(db, id), id, principal);
}

/** A payment by id, or undefined. */
export async function findPaymentById(db: Pick<Database, "select">, id: string): Promise<PaymentRow | undefined> {
  const [row] = await db.select().from(payments).where(eq(payments.id, id)).limit(1);
  return row;
}

/** A payment by id, or 404. */
export async function getPayment(db: Pick<Database, "select">, id: string): Promise<PaymentRow> {
  const row = await findPaymentById(db, id);
  if (!row) throw notFound(id);
  return row;
}

/** A payment by id with its row locked for the transaction (`for update`), or undefined. */
export async function lockPayment(tx: Pick<Database, "select">, id: string): Promise<PaymentRow | undefined> {
  const [row] = await tx.select().from(payments).where(eq(payments.id, id)).for("update").limit(1);
  return row;
}

/**
 * Locks a payment's row for the transaction (`for update`) without reading it: refund outcomes
 * take it before their refund's row, in the same order as refund creation.
 */
export async function lockPaymentRow(tx: Pick<Database, "select">, id: string): Promise<void> {
  await tx.select({ id: payments.id }).from(payments).where(eq(payments.id, id)).for("update");
}

/** The payment Fiuu knows by `gatewayOrderId`, its row locked for the transaction (paymentLockByGatewayOrder), or undefined. */
export async function lockPaymentByGatewayOrder(tx: Pick<Database, "execute">, gatewayOrderId: string): Promise<PaymentRow | undefined> {
  const [locked] = await queryRows<Record<string, unknown>>(tx, paymentLockByGatewayOrder(gatewayOrderId));
  return locked && rowOf(payments, locked);
}

/**
 * The payment Fiuu knows by `gatewayOrderId`, unlocked, with its row version (for the guards of
 * paymentUpdateIfUnchanged and paymentLockIfUnchanged), or undefined.
 */
export async function findPaymentVersionByGatewayOrder(
  db: Pick<Database, "execute">,
  gatewayOrderId: string,
): Promise<{ payment: PaymentRow; version: string } | undefined> {
  const [found] = await queryRows<Record<string, unknown>>(db, paymentByGatewayOrderWithVersion(gatewayOrderId));
  return found && { payment: rowOf(payments, found), version: found.row_version as string };
}

/** The payment Fiuu knows by `gatewayOrderId`, unlocked, or undefined. */
export async function findPaymentByGatewayOrder(db: Pick<Database, "select">, gatewayOrderId: string): Promise<PaymentRow | undefined> {
  const [known] = await db.select().from(payments).where(eq(payments.gatewayOrderId, gatewayOrderId)).limit(1);
  return known;
}

/** The Fiuu tranID of a payment (what a refund names), or undefined when there is no such payment. */
export async function findPaymentTranId(db: Pick<Database, "select">, id: string): Promise<{ tranId: string | null } | undefined> {
  const [payment] = await db.select({ tranId: payments.tranId }).from(payments).where(eq(payments.id, id)).limit(1);
  return payment;
}

/** When a payment's personal data was erased (null if it was not), or undefined when there is no such payment. */
export async function findPaymentErasedAt(db: Pick<Database, "select">, id: string): Promise<{ erasedAt: Date | null } | undefined> {
  const [row] = await db
    .select({ erasedAt: payments.erasedAt })
    .from(payments)
    .where(inArray(payments.id, [id]));
  return row;
}

/** Created payments past their expires_at, the longest overdue first, at most `limit` of them. */
export async function findExpiryDue(db: Pick<Database, "select">, now: Date, limit: number): Promise<{ id: string }[]> {
  return db
    .select({ id: payments.id })
    .from(payments)
    .where(and(eq(payments.status, "created"), lte(payments.expiresAt, now)))
    .orderBy(payments.expiresAt)
    .limit(limit);
}

/** A payment holding the order (orderHoldingStatuses by default) other than `except`, or undefined. */
export async function findOrderHolder(
  db: Pick<Database, "select">,
  orderId: string,
  options: { except?: string; statuses?: readonly PaymentStatus[] } = {},
): Promise<{ id: string; status: PaymentStatus } | undefined> {
  const [holder] = await db
    .select({ id: payments.id, status: payments.status })
    .from(payments)
    .where(
      and(
        eq(payments.orderId, orderId),
        inArray(payments.status, [...(options.statuses ?? orderHoldingStatuses)]),
        options.except ? ne(payments.id, options.except) : undefined,
      ),
    )
    .limit(1);
  return holder;
}

/** Payments newest first, filtered by order and status, a page at a time (cursor = last id seen). */
export async function listPayments(db: Database, query: { order_id?: string; status?: PaymentStatus } & PageQuery): Promise<Page<PaymentRow>> {
  const rows = await db
    .select()
    .from(payments)
    .where(
      and(
        query.order_id ? eq(payments.orderId, query.order_id) : undefined,
        query.status ? eq(payments.status, query.status) : undefined,
        afterCursor(payments.id, query),
      ),
    )
    .orderBy(desc(payments.id))
    .limit(fetchLimit(query));
  return toPage(rows, query);
}
