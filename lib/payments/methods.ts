import { and, asc, eq, gte, isNull, lte, or, sql } from "drizzle-orm";
import { paymentMethods } from "../../drizzle/schema.js";
import type { Database } from "../db/client.js";
import { ApiError } from "../errors.js";

export type PaymentMethodRow = typeof paymentMethods.$inferSelect;

/** Enabled channels, optionally only those that take this currency and amount. */
export async function listPaymentMethods(db: Database, filter: { currency?: string; amount?: number }) {
  const conditions = [eq(paymentMethods.enabled, true)];
  if (filter.currency) conditions.push(sql`${filter.currency} = any(${paymentMethods.currencies})`);
  if (filter.amount !== undefined) {
    conditions.push(lte(paymentMethods.minAmount, filter.amount));
    conditions.push(or(isNull(paymentMethods.maxAmount), gte(paymentMethods.maxAmount, filter.amount))!);
  }
  return db
    .select()
    .from(paymentMethods)
    .where(and(...conditions))
    .orderBy(asc(paymentMethods.sortOrder), asc(paymentMethods.code));
}

/** Refuses a channel that is unknown, disabled, or does not take this currency and amount. */
export async function assertChannelAccepts(db: Pick<Database, "select">, channel: string, currency: string, amount: number) {
  const [method] = await db.select().from(paymentMethods).where(eq(paymentMethods.code, channel)).limit(1);
  const refuse = (message: string) => {
    throw new ApiError("invalid_request", message, { errors: [{ field: "channel", message }] });
  };
  if (!method || !method.enabled) return refuse(`Channel ${channel} is not available.`);
  if (!method.currencies.includes(currency)) return refuse(`Channel ${channel} does not take ${currency}.`);
  if (amount < method.minAmount) return refuse(`Channel ${channel} needs at least ${method.minAmount} minor units.`);
  if (method.maxAmount !== null && amount > method.maxAmount) {
    return refuse(`Channel ${channel} takes at most ${method.maxAmount} minor units.`);
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
