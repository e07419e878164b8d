import type { payments } from "../../../drizzle/schema.js";
import type { AppDeps } from "../deps.js";
import { ApiError } from "../../core/errors.js";

export type PaymentRow = typeof payments.$inferSelect;

export interface Customer {
  name: string;
  email: string;
  mobile: string | null;
}

/** Hides most of a customer's details, for checkout pages and webhooks. */
export function maskCustomer(customer: Customer): Customer {
  const maskWord = (word: string) => (word.length <= 1 ? word : `${word[0]}${"*".repeat(Math.min(word.length - 1, 6))}`);
  const [local = "", domain = ""] = customer.email.split("@");
  return {
    name: customer.name.split(/\s+/).filter(Boolean).map(maskWord).join(" "),
    email: `${maskWord(local)}@${domain}`,
    mobile: customer.mobile ? `${"*".repeat(Math.max(0, customer.mobile.length - 4))}${customer.mobile.slice(-4)}` : null,
  };
}

/** The customer's details, decrypted; null once erased (retention or the customer's request). */
export function customerOrNull(deps: Pick<AppDeps, "cipher">, row: PaymentRow): Customer | null {
  if (row.erasedAt || row.customerName === null || row.customerEmail === null) return null;
  return {
    name: deps.cipher.decrypt(row.customerName),
    email: deps.cipher.decrypt(row.customerEmail),
    mobile: row.customerMobile ? deps.cipher.decrypt(row.customerMobile) : null,
  };
}

/** The customer's details, decrypted, for work that needs them (a checkout form): refused once erased. */
export function customerOf(deps: Pick<AppDeps, "cipher">, row: PaymentRow): Customer {
  const customer = customerOrNull(deps, row);
  if (!customer) throw new ApiError("invalid_state", `Payment ${row.id}'s customer details have been erased.`);
  return customer;
}

/** The URL a checkout page opens to send the shopper to Fiuu. */
export function checkoutUrl(publicUrl: string, paymentId: string, clientSecret: string): string {
  return `${publicUrl}/pay/${paymentId}?client_secret=${encodeURIComponent(clientSecret)}`;
}

/**
 * The API's view of a payment. Customer details are masked unless the caller is the shop itself,
 * and null once erased; `customer` saves decrypting what the caller has just encrypted.
 */
export function paymentResource(deps: Pick<AppDeps, "cipher">, row: PaymentRow, options: { masked: boolean; customer?: Customer }) {
  const customer = options.customer ?? customerOrNull(deps, row);
  return {
    id: row.id,
    object: "payment" as const,
    order_id: row.orderId,
    amount: row.amount,
    currency: row.currency,
    status: row.status,
    channel: row.channel,
    description: row.description,
    customer: customer && options.masked ? maskCustomer(customer) : customer,
    return_url: row.returnUrl,
    metadata: row.metadata,
    amount_refunded: row.amountRefunded,
    gateway: {
      order_id: row.gatewayOrderId,
      tran_id: row.tranId,
      appcode: row.appcode,
      channel: row.paidChannel,
      paydate: row.paydate,
    },
    failure: row.failureCode || row.failureMessage ? { code: row.failureCode, message: row.failureMessage } : null,
    expires_at: row.expiresAt.toISOString(),
    /** When the customer's personal data was erased (then `customer` is null); money facts stay. */
    erased_at: row.erasedAt?.toISOString() ?? null,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

export type PaymentResource = ReturnType<typeof paymentResource>;
