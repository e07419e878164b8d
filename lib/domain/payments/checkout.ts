import { appendAudit } from "../audit.js";
import type { AppDeps, Principal } from "../deps.js";
import { enqueueRequery, firstRequeryDelayMs } from "./requery-queue.js";
import { vcode } from "../../adapters/fiuu/signatures.js";
import { toFiuuAmount } from "../../core/money.js";
import { assertChannelAccepts } from "./methods.js";
import { lockPayment, visibleOr404 } from "./queries.js";
import { customerOf, type PaymentRow } from "./resource.js";
import { startCheckoutOn } from "./statements.js";
import { assertAllows } from "./transitions.js";

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
    const row = visibleOr404(await lockPayment(tx, id), id, principal);
    assertAllows("checkout", row, now);
    const channel = options.channel ?? row.channel ?? undefined;
    // Inside the transaction: PGlite has one connection, and a query beside it would wait forever.
    if (channel) await assertChannelAccepts(tx, channel, row.currency, row.amount);
    const updated = await startCheckoutOn(tx, id, channel, now);
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
  return text
    .replace(/[^\p{L}\p{N} .,\-_/()#:]/gu, " ")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * The buyer fields Fiuu asks for. `bill_mobile` is mandatory on Fiuu's side, and it refuses dummy
 * buyer data (P04): a payment that lacks the shopper's name, email or mobile sends what it has and
 * `guest_checkout=1` instead, never an empty or made-up value (FIUU.md §1).
 */
function buyerFields(deps: AppDeps, row: PaymentRow): Record<string, string> {
  const customer = customerOf(deps, row);
  const held: Record<string, string> = {};
  for (const [name, value] of [
    ["bill_name", customer.name],
    ["bill_email", customer.email],
    ["bill_mobile", customer.mobile],
  ] as const) {
    if (value && value.trim() !== "") held[name] = value;
  }
  return Object.keys(held).length === 3 ? held : { ...held, guest_checkout: "1" };
}

/**
 * The signed form for Fiuu's hosted payment page. The amount comes only from the stored payment,
 * so no browser can choose what gets signed.
 */
export function hostedForm(deps: AppDeps, row: PaymentRow): HostedForm {
  const { fiuu, publicUrl } = deps.config;
  const amount = toFiuuAmount(row.amount);
  const fields: Record<string, string> = {
    amount,
    orderid: row.gatewayOrderId,
    ...buyerFields(deps, row),
    bill_desc: plainDescription(row.description),
    currency: row.currency,
    ...(countryOf[row.currency] ? { country: countryOf[row.currency]! } : {}),
    ...(row.channel ? { channel: row.channel } : {}),
    returnurl: `${publicUrl}/webhooks/fiuu/return`,
    callbackurl: `${publicUrl}/webhooks/fiuu/callback`,
    langcode: "en",
    vcode: vcode({
      amount,
      merchantId: fiuu.merchantId,
      orderId: row.gatewayOrderId,
      verifyKey: fiuu.verifyKey,
      currency: row.currency,
      extended: fiuu.extendedVcode,
    }),
  };
  return { method: "POST", url: `${fiuu.paymentUrl}/RMS/pay/${fiuu.merchantId}/`, fields };
}

/** Hosted-form fields Fiuu's seamless script takes under an `mps` prefix. */
const seamlessNames = [
  "channel",
  "amount",
  "orderid",
  "bill_name",
  "bill_email",
  "bill_mobile",
  "guest_checkout",
  "bill_desc",
  "currency",
  "country",
  "langcode",
];

/**
 * The same values under the names Fiuu's seamless script reads (`mps*`). The signature is
 * `mpsvcode`: the script does not read `vcode`, and with "Verify Payment" on Fiuu refuses a payment
 * without it (P03). Fiuu's seamless sources never name guest checkout; `mpsguest_checkout` follows
 * the script's rule of prefixing every form field.
 */
export function seamlessFields(deps: AppDeps, row: PaymentRow): Record<string, string> {
  const { fields } = hostedForm(deps, row);
  const seamless: Record<string, string> = { mpsmerchantid: deps.config.fiuu.merchantId };
  for (const name of seamlessNames) {
    if (fields[name] !== undefined) seamless[`mps${name}`] = fields[name]!;
  }
  seamless.mpsvcode = fields.vcode!;
  return seamless;
}
