import type { AppDeps } from "../deps.js";
import { isUniqueViolation, queryRows } from "../../adapters/db/client.js";
import { hashSecret, randomToken } from "../../core/crypto.js";
import { ApiError } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import { emailHasherFor } from "../retention/email-hash.js";
import type { Currency } from "../../core/money.js";
import { assertChannelAccepts } from "./methods.js";
import { findOrderHolder } from "./queries.js";
import type { PaymentRow } from "./resource.js";
import { paymentCreate } from "./statements.js";
import { unsettledStatuses } from "./transitions.js";

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

/**
 * Creates a payment for an order, refusing it while another payment holds the order (created,
 * pending, succeeded or conflicted). One statement checks, inserts the payment and its audit row:
 * one round trip, atomic without a transaction around it. Two creates for one order at once both
 * insert an open payment, so the partial unique index `payments_one_open_per_order` makes the
 * later one wait for the first and fail; that failure is answered like the check's refusal.
 */
export async function createPayment(deps: AppDeps, input: CreatePaymentInput, audit: { actor: string; createdBy: string; requestId?: string }) {
  const now = deps.now();
  const id = newId("pay", now.getTime());
  const clientSecret = `${id}_secret_${randomToken(24)}`;
  const db = deps.database.db;
  if (input.channel) await assertChannelAccepts(db, input.channel, input.currency, input.amount);

  // The row as inserted, every column given, so no default is left for the database to fill.
  const row: PaymentRow = {
    id,
    orderId: input.order_id,
    amount: input.amount,
    currency: input.currency,
    status: "created",
    channel: input.channel ?? null,
    description: input.description,
    customerName: deps.cipher.encrypt(input.customer.name),
    customerEmail: deps.cipher.encrypt(input.customer.email),
    customerMobile: input.customer.mobile ? deps.cipher.encrypt(input.customer.mobile) : null,
    // Keyed, so erasure on request can find the customer's payments without a clear email.
    customerEmailHash: emailHasherFor(deps.config).hash(input.customer.email),
    erasedAt: null,
    returnUrl: input.return_url ?? null,
    metadata: input.metadata ?? {},
    clientSecretHash: hashSecret(clientSecret),
    // Fiuu's orderid must be alphanumeric and at most 40 characters: the id without its underscore.
    gatewayOrderId: id.replace("_", ""),
    tranId: null,
    appcode: null,
    paidChannel: null,
    paydate: null,
    failureCode: null,
    failureMessage: null,
    amountRefunded: 0,
    amountRefundReserved: 0,
    createdBy: audit.createdBy,
    checkoutStartedAt: null,
    expiresAt: new Date(now.getTime() + deps.config.paymentTtlMs),
    createdAt: now,
    updatedAt: now,
  };

  let outcome: { created: string | null; holder_id: string | null; holder_status: string | null } | undefined;
  try {
    [outcome] = await queryRows(db, paymentCreate(row, audit));
  } catch (error) {
    if (!isUniqueViolation(error, "payments_one_open_per_order")) throw error;
    // The index covers the unsettled statuses only: the payment it made this one wait for is one of them.
    const holder = await findOrderHolder(db, row.orderId, { statuses: unsettledStatuses });
    outcome = { created: null, holder_id: holder?.id ?? null, holder_status: holder?.status ?? null };
  }
  if (!outcome?.created) {
    throw new ApiError("order_has_payment", `Order ${row.orderId} already has payment ${outcome?.holder_id} (${outcome?.holder_status}).`, {
      fields: { payment_id: outcome?.holder_id },
    });
  }
  deps.metrics.payments.inc({ status: "created", channel: row.channel ?? "any" });
  return { row, clientSecret };
}
