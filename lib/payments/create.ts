import { and, eq, inArray, sql } from "drizzle-orm";
import { payments } from "../../drizzle/schema.js";
import { appendAudit } from "../audit.js";
import type { AppDeps } from "../context.js";
import { hashSecret, randomToken } from "../crypto.js";
import { ApiError } from "../errors.js";
import { newId } from "../ids.js";
import type { Currency } from "../money.js";
import { assertChannelAccepts } from "./methods.js";

export interface CreatePaymentInput {
  order_id: string;
  amount: number;
  currency: Currency;
  description: string;
  customer: { name: string; email: string; mobile?: string };
  channel?: string;
  return_url?: string;
  metadata?: Record<string, string>;
}

/** Statuses that hold an order: a new payment for it is refused while one of these exists. */
const holdingStatuses = ["created", "pending", "succeeded", "conflicted"] as const;

/**
 * Creates a payment for an order. Creates for one order are serialised by a transaction-scoped
 * advisory lock, so "one open or succeeded payment per order" holds across replicas; the partial
 * unique index stands behind it for open payments.
 */
export async function createPayment(
  deps: AppDeps,
  input: CreatePaymentInput,
  audit: { actor: string; createdBy: string; requestId?: string },
) {
  const now = deps.now();
  const id = newId("pay", now.getTime());
  const clientSecret = `${id}_secret_${randomToken(24)}`;
  if (input.channel) await assertChannelAccepts(deps.database.db, input.channel, input.currency, input.amount);

  const row = await deps.database.db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(1, hashtext(${input.order_id}))`);
    const [holder] = await tx
      .select({ id: payments.id, status: payments.status })
      .from(payments)
      .where(and(eq(payments.orderId, input.order_id), inArray(payments.status, holdingStatuses)))
      .limit(1);
    if (holder) {
      throw new ApiError("order_has_payment", `Order ${input.order_id} already has payment ${holder.id} (${holder.status}).`, {
        fields: { payment_id: holder.id },
      });
    }
    const [inserted] = await tx
      .insert(payments)
      .values({
        id,
        orderId: input.order_id,
        amount: input.amount,
        currency: input.currency,
        channel: input.channel ?? null,
        description: input.description,
        customerName: deps.cipher.encrypt(input.customer.name),
        customerEmail: deps.cipher.encrypt(input.customer.email),
        customerMobile: input.customer.mobile ? deps.cipher.encrypt(input.customer.mobile) : null,
        returnUrl: input.return_url ?? null,
        metadata: input.metadata ?? {},
        clientSecretHash: hashSecret(clientSecret),
        // Fiuu's orderid must be alphanumeric and at most 40 characters: the id without its underscore.
        gatewayOrderId: id.replace("_", ""),
        createdBy: audit.createdBy,
        expiresAt: new Date(now.getTime() + deps.config.paymentTtlMs),
        createdAt: now,
        updatedAt: now,
      })
      .returning();
    await appendAudit(tx, {
      actor: audit.actor,
      action: "payment.created",
      entityType: "payment",
      entityId: id,
      requestId: audit.requestId,
      data: { order_id: input.order_id, amount: input.amount, currency: input.currency, channel: input.channel ?? null },
    });
    return inserted!;
  });
  deps.metrics.payments.inc({ status: "created", channel: row.channel ?? "any" });
  return { row, clientSecret };
}
