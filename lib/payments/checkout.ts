import { eq, sql } from "drizzle-orm";
import { payments } from "../../drizzle/schema.js";
import { appendAudit } from "../audit.js";
import type { AppDeps, Principal } from "../context.js";
import { hashSecret, safeEqual } from "../crypto.js";
import { ApiError } from "../errors.js";
import { enqueueRequery, firstRequeryDelayMs } from "./reports.js";
import { vcode } from "../fiuu/signatures.js";
import { toFiuuAmount } from "../money.js";
import { assertChannelAccepts } from "./methods.js";
import { notFound } from "./queries.js";
import { customerOf, type PaymentRow } from "./resource.js";

const countryOf: Record<string, string> = { MYR: "MY", SGD: "SG", THB: "TH", PHP: "PH", IDR: "ID" };

export interface HostedForm {
  method: "POST";
  url: string;
  fields: Record<string, string>;
}

/**
 * Marks the start of a checkout and returns the payment it is for. Only a created, unexpired
 * payment can be sent to Fiuu; the channel (the caller's choice or the payment's) must be enabled
 * for its currency and amount. Every start is audited; the first one is remembered for reconciliation.
 */
export async function startCheckout(
  deps: AppDeps,
  id: string,
  principal: Principal,
  options: { channel?: string; actor: string; requestId?: string; via: "api" | "seamless" | "page" },
): Promise<PaymentRow> {
  const now = deps.now();
  return deps.database.db.transaction(async (tx) => {
    const [row] = await tx.select().from(payments).where(eq(payments.id, id)).for("update").limit(1);
    if (!row || (principal.kind === "client" && !safeEqual(hashSecret(principal.secret), row.clientSecretHash))) {
      throw notFound(id);
    }
    if (row.status !== "created") throw new ApiError("invalid_state", `Payment ${id} is ${row.status}; checkout is over.`);
    if (row.expiresAt <= now) throw new ApiError("invalid_state", `Payment ${id} expired at ${row.expiresAt.toISOString()}.`);
    const channel = options.channel ?? row.channel ?? undefined;
    // Inside the transaction: PGlite has one connection, and a query beside it would wait forever.
    if (channel) await assertChannelAccepts(tx, channel, row.currency, row.amount);
    const [updated] = await tx
      .update(payments)
      .set({ channel: channel ?? null, checkoutStartedAt: sql`coalesce(${payments.checkoutStartedAt}, ${now.toISOString()}::timestamptz)`, updatedAt: now })
      .where(eq(payments.id, id))
      .returning();
    if (!row.checkoutStartedAt) {
      // From now on Fiuu may hold money for this payment: reconcile it even if no report ever arrives.
      await enqueueRequery(tx, id, new Date(now.getTime() + firstRequeryDelayMs));
    }
    await appendAudit(tx, {
      actor: options.actor,
      action: "payment.checkout_started",
      entityType: "payment",
      entityId: id,
      requestId: options.requestId,
      data: { channel: channel ?? null, via: options.via },
    });
    return updated!;
  });
}

/** Fiuu's description field refuses many special characters (its firewall): keep the plain ones. */
function plainDescription(text: string): string {
  return text.replace(/[^\p{L}\p{N} .,\-_/()#:]/gu, " ").replace(/\s+/g, " ").trim();
}

/**
 * The signed form for Fiuu's hosted payment page. The amount comes only from the stored payment,
 * so no browser can choose what gets signed.
 */
export function hostedForm(deps: AppDeps, row: PaymentRow): HostedForm {
  const { fiuu, publicUrl } = deps.config;
  const customer = customerOf(deps, row);
  const amount = toFiuuAmount(row.amount);
  const fields: Record<string, string> = {
    amount,
    orderid: row.gatewayOrderId,
    bill_name: customer.name,
    bill_email: customer.email,
    bill_mobile: customer.mobile ?? "",
    bill_desc: plainDescription(row.description),
    currency: row.currency,
    ...(countryOf[row.currency] ? { country: countryOf[row.currency]! } : {}),
    ...(row.channel ? { channel: row.channel } : {}),
    returnurl: `${publicUrl}/webhooks/fiuu/return`,
    callbackurl: `${publicUrl}/webhooks/fiuu/callback`,
    langcode: "en",
    vcode: vcode({
      amount,
      merchantId: fiuu.merchantId!,
      orderId: row.gatewayOrderId,
      verifyKey: fiuu.verifyKey!,
      currency: row.currency,
      extended: fiuu.extendedVcode,
    }),
  };
  return { method: "POST", url: `${fiuu.paymentUrl}/RMS/pay/${fiuu.merchantId}/`, fields };
}

/** The same values under the names Fiuu's seamless script reads (`mps*`). */
export function seamlessFields(deps: AppDeps, row: PaymentRow): Record<string, string> {
  const { fields } = hostedForm(deps, row);
  const seamless: Record<string, string> = { mpsmerchantid: deps.config.fiuu.merchantId! };
  for (const name of ["channel", "amount", "orderid", "bill_name", "bill_email", "bill_mobile", "bill_desc", "currency", "country", "langcode"]) {
    if (fields[name] !== undefined) seamless[`mps${name}`] = fields[name]!;
  }
  seamless.vcode = fields.vcode!;
  return seamless;
}
