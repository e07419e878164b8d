import { eq, sql, type SQL } from "drizzle-orm";
import { payments } from "../../../drizzle/schema.js";
import type { Database } from "../../adapters/db/client.js";
import { columnsOf, updateById } from "../../adapters/db/rows.js";
import { auditInsertFrom } from "../audit.js";
import type { PaymentRow } from "./resource.js";
import { orderHoldingStatuses } from "./transitions.js";

// The payments table's statements on the hot path, as `sql` templates (see lib/adapters/db/rows.ts
// for why not the query builder), built here for every caller: the service, and the bench's
// baseline and ceiling (tests/load), which send exactly these.

// Constants of the state machine, written into the statement as literals (its text stays the same).
const holdingList = sql.raw(orderHoldingStatuses.map((status) => `'${status}'`).join(", "));

/**
 * Creates a payment unless another holds its order, with its audit row, as one statement (for
 * queryRows): answers one row, `created` (the new id, or null when refused), `holder_id` and
 * `holder_status` (the payment holding the order, if any). Every column is given from `row`.
 */
export function paymentCreate(row: PaymentRow, audit: { actor: string; requestId?: string }): SQL {
  const audited = auditInsertFrom("inserted", {
    actor: audit.actor,
    action: "payment.created",
    entityType: "payment",
    requestId: audit.requestId,
    data: { order_id: row.orderId, amount: row.amount, currency: row.currency, channel: row.channel },
  });
  return sql`with holder as (
      select id, status from payments
      where order_id = ${row.orderId} and status in (${holdingList})
      limit 1
    ), inserted as (
      insert into payments (id, order_id, amount, currency, status, channel, description, customer_name, customer_email,
        customer_mobile, customer_email_hash, return_url, metadata, client_secret_hash, gateway_order_id, amount_refunded, amount_refund_reserved,
        created_by, expires_at, created_at, updated_at)
      select ${row.id}, ${row.orderId}, ${row.amount}::bigint, ${row.currency}, ${row.status}, ${row.channel}, ${row.description},
        ${row.customerName}, ${row.customerEmail}, ${row.customerMobile}, ${row.customerEmailHash}, ${row.returnUrl},
        ${JSON.stringify(row.metadata)}::jsonb,
        ${row.clientSecretHash}, ${row.gatewayOrderId}, 0, 0, ${row.createdBy}, ${row.expiresAt.toISOString()}::timestamptz,
        ${row.createdAt.toISOString()}::timestamptz, ${row.updatedAt.toISOString()}::timestamptz
      where not exists (select 1 from holder)
      returning id
    ), audited as (
      ${audited}
    )
    select (select id from inserted) as created, holder.id as holder_id, holder.status as holder_status
    from (select 1) as one left join holder on true`;
}

/** Every column of the payment Fiuu knows by `gatewayOrderId`, its row locked for the transaction (for queryRows and rowOf). */
export function paymentLockByGatewayOrder(gatewayOrderId: string): SQL {
  return sql`select ${columnsOf(payments)} from payments where gateway_order_id = ${gatewayOrderId} limit 1 for update`;
}

/** The update of a payment's changed columns, for executeAll with a caller's other writes. */
export function paymentUpdate(id: string, changes: Partial<PaymentRow>): SQL {
  return updateById(payments, id, changes);
}

/**
 * Every column of the payment Fiuu knows by `gatewayOrderId`, unlocked, with `row_version`: its
 * row version (xmin, which every write to the row changes), for the guards below.
 */
export function paymentByGatewayOrderWithVersion(gatewayOrderId: string): SQL {
  return sql`select ${columnsOf(payments)}, xmin::text as row_version from payments where gateway_order_id = ${gatewayOrderId} limit 1`;
}

/** The update of a payment's changed columns while its row version is still `version`: a guard for executeIfUnchanged. */
export function paymentUpdateIfUnchanged(id: string, version: string, changes: Partial<PaymentRow>): SQL {
  return sql`${updateById(payments, id, changes)} and xmin = ${version}::xid returning id`;
}

/** The payment's row lock while its row version is still `version`: a guard for executeIfUnchanged when nothing of the payment changes. */
export function paymentLockIfUnchanged(id: string, version: string): SQL {
  return sql`select id from payments where id = ${id} and xmin = ${version}::xid for update`;
}

type Tx = Pick<Database, "update">;

/** Moves a payment to cancelled; returns the updated row. The caller holds its row lock and has asked the state machine. */
export async function markCancelled(tx: Tx, id: string, now: Date): Promise<PaymentRow | undefined> {
  const [updated] = await tx.update(payments).set({ status: "cancelled", updatedAt: now }).where(eq(payments.id, id)).returning();
  return updated;
}

/** Moves a payment to expired; returns the updated row. The caller holds its row lock and has asked the state machine. */
export async function markExpired(tx: Tx, id: string, now: Date): Promise<PaymentRow | undefined> {
  const [updated] = await tx.update(payments).set({ status: "expired", updatedAt: now }).where(eq(payments.id, id)).returning();
  return updated;
}

/** Records a checkout start on `channel` (none: null); the first start's time is kept. Returns the updated row. */
export async function startCheckoutOn(tx: Tx, id: string, channel: string | undefined, now: Date): Promise<PaymentRow | undefined> {
  const [updated] = await tx
    .update(payments)
    .set({
      channel: channel ?? null,
      checkoutStartedAt: sql`coalesce(${payments.checkoutStartedAt}, ${now.toISOString()}::timestamptz)`,
      updatedAt: now,
    })
    .where(eq(payments.id, id))
    .returning();
  return updated;
}

/** Reserves `amount` of a payment for a refund; the caller holds its row lock and has checked the refundable rest. */
export async function reserveRefund(tx: Tx, paymentId: string, amount: number, now: Date): Promise<void> {
  await tx
    .update(payments)
    .set({ amountRefundReserved: sql`${payments.amountRefundReserved} + ${amount}`, updatedAt: now })
    .where(eq(payments.id, paymentId));
}

/** A reserved refund Fiuu paid: its amount is added to the payment's amount_refunded (the reservation stays). */
export async function settleRefund(tx: Tx, paymentId: string, amount: number, now: Date): Promise<void> {
  await tx
    .update(payments)
    .set({ amountRefunded: sql`${payments.amountRefunded} + ${amount}`, updatedAt: now })
    .where(eq(payments.id, paymentId));
}

/** A reserved refund that failed: its amount goes back to the payment's refundable rest. */
export async function releaseRefund(tx: Tx, paymentId: string, amount: number, now: Date): Promise<void> {
  await tx
    .update(payments)
    .set({ amountRefundReserved: sql`${payments.amountRefundReserved} - ${amount}`, updatedAt: now })
    .where(eq(payments.id, paymentId));
}
