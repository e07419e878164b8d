import { and, asc, eq, sql } from "drizzle-orm";
import { paymentMethods } from "../../../drizzle/schema.js";
import type { Database } from "../../adapters/db/client.js";
import { ApiError } from "../../core/errors.js";

export type PaymentMethodRow = typeof paymentMethods.$inferSelect;

/**
 * Whether a channel takes this amount. Both limits are inclusive: `min_amount` is the smallest
 * amount accepted, so the spec's "> RM 1.00" is stored as 101 and Atome's "above RM 10.00" as 1001
 * (drizzle/seed.sql); `max_amount` is NULL when neither Fiuu nor the shop sets a maximum.
 */
export function takesAmount(method: Pick<PaymentMethodRow, "minAmount" | "maxAmount">, amount: number): boolean {
  return amount >= method.minAmount && (method.maxAmount === null || amount <= method.maxAmount);
}

/** Enabled channels, optionally only those that take this currency and amount (the same test as assertChannelAccepts). */
export async function listPaymentMethods(db: Database, filter: { currency?: string; amount?: number }) {
  const conditions = [eq(paymentMethods.enabled, true)];
  if (filter.currency) conditions.push(sql`${filter.currency} = any(${paymentMethods.currencies})`);
  const rows = await db
    .select()
    .from(paymentMethods)
    .where(and(...conditions))
    .orderBy(asc(paymentMethods.sortOrder), asc(paymentMethods.code));
  const { amount } = filter;
  return amount === undefined ? rows : rows.filter((method) => takesAmount(method, amount));
}

/** Refuses a channel that is unknown, disabled, or does not take this currency and amount. */
export async function assertChannelAccepts(db: Pick<Database, "select">, channel: string, currency: string, amount: number) {
  const [method] = await db.select().from(paymentMethods).where(eq(paymentMethods.code, channel)).limit(1);
  const refuse = (message: string) => {
    throw new ApiError("invalid_request", message, { errors: [{ field: "channel", message }] });
  };
  if (!method?.enabled) return refuse(`Channel ${channel} is not available.`);
  if (!method.currencies.includes(currency)) return refuse(`Channel ${channel} does not take ${currency}.`);
  if (!takesAmount(method, amount)) {
    return refuse(
      amount < method.minAmount
        ? `Channel ${channel} needs at least ${method.minAmount} minor units.`
        : `Channel ${channel} takes at most ${method.maxAmount} minor units.`,
    );
  }
  return method;
}

/** The API's view of a channel. */
export function paymentMethodResource(row: PaymentMethodRow) {
  return {
    code: row.code,
    name: row.name,
    type: row.type,
    currencies: row.currencies,
    min_amount: row.minAmount,
    max_amount: row.maxAmount,
  };
}
