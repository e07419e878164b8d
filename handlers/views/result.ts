import { html } from "hono/html";
import { toFiuuAmount } from "../../lib/core/money.js";
import type { PaymentRow } from "../../lib/domain/payments/resource.js";
import { page } from "./layout.js";

/** What the result page needs besides the payment: where "Back to the shop" and "Try again" go. */
export interface ResultLinks {
  /** The shop's return_url with payment_id and status, when the payment has one. */
  backUrl?: string;
  /** Shown for a declined payment while its order can still be paid: the shop starts a new payment. */
  retryUrl?: string;
}

type Tone = "ok" | "bad" | "wait" | "info";

// The seeded cash channels (drizzle/seed.sql, type "cash"): paid at a counter, confirmed later.
const cashChannel = /cash|jompay/i;

/** Each status in plain words: a heading, a sentence or two, and a symbol so colour is never alone. */
function describe(payment: PaymentRow): { tone: Tone; symbol: string; heading: string; body: ReturnType<typeof html> } {
  const amount = `${payment.currency} ${toFiuuAmount(payment.amount)}`;
  switch (payment.status) {
    case "succeeded":
      return {
        tone: "ok",
        symbol: "✓",
        heading: "Payment successful",
        body: html`<p>Thank you. We received your payment of <strong>${amount}</strong>. The shop has been told and will process your order.</p>
${payment.amountRefunded > 0 ? html`<p>${payment.currency} ${toFiuuAmount(payment.amountRefunded)} of it has been refunded to you.</p>` : ""}`,
      };
    case "failed":
      return {
        tone: "bad",
        symbol: "✕",
        heading: "Payment declined",
        body: html`<p>Your bank or card issuer did not accept this payment, so no money was taken for it.</p>
<p>You can try again, with the same or another way to pay.</p>`,
      };
    case "cancelled":
      return {
        tone: "info",
        symbol: "–",
        heading: "Payment cancelled",
        body: html`<p>The shop cancelled this payment before it was paid. No money was taken.</p>`,
      };
    case "expired":
      return {
        tone: "info",
        symbol: "⌛",
        heading: "Payment expired",
        body: html`<p>The time to pay ran out before any payment arrived. No money was taken. To buy, start again from the shop.</p>`,
      };
    case "conflicted":
      return {
        tone: "wait",
        symbol: "!",
        heading: "We are checking this payment",
        body: html`<p>The bank's confirmation did not match this order, so a person is checking it. You have not been charged twice.</p>
<p><strong>Please do not pay again.</strong> If money was taken, it is recorded against this reference and the shop will sort it out with you.</p>`,
      };
    case "pending":
      return { tone: "wait", symbol: "…", heading: "Waiting for your payment to be confirmed", body: waitingAdvice(payment) };
    default:
      // created: either the shopper has not reached the payment page yet, or is (or was) on it.
      if (!payment.checkoutStartedAt) {
        return {
          tone: "info",
          symbol: "…",
          heading: "Payment not started",
          body: html`<p>This payment has not been sent to the bank yet, and no money was taken. Go back to the shop to pay.</p>`,
        };
      }
      return {
        tone: "wait",
        symbol: "…",
        heading: "Waiting for the bank",
        body: html`<p>You were sent to the payment page. If you paid there, the bank has not confirmed it yet; this page updates by itself.</p>
<p>If you left the payment page without paying, nothing was taken.</p>`,
      };
  }
}

function waitingAdvice(payment: PaymentRow) {
  const channel = payment.paidChannel ?? payment.channel ?? "";
  const cash = html`<section aria-labelledby="cash-heading"><h2 id="cash-heading">Paying in cash?</h2>
<p>Pay at the counter (for example 7-Eleven or 99 Speedmart) with the payment slip or reference number you were given, before it runs out. Your payment is confirmed here once the counter reports it.</p></section>`;
  const bank = html`<section aria-labelledby="bank-heading"><h2 id="bank-heading">Paid by online banking or card?</h2>
<p>Some banks take a few minutes to confirm. This page refreshes by itself: <strong>you do not need to pay again</strong>. You may close it; the shop is told when the payment is confirmed.</p></section>`;
  return cashChannel.test(channel) ? html`${cash}${bank}` : html`${bank}${cash}`;
}

/** The shopper's result page: what happened, the amount and reference, and what to do next. */
export function resultPage(payment: PaymentRow, final: boolean, links: ResultLinks) {
  const said = describe(payment);
  return page(
    said.heading,
    html`<div class="notice ${said.tone}" role="status"><span class="symbol" aria-hidden="true">${said.symbol}</span><h1 data-testid="result-heading">${said.heading}</h1></div>
${said.body}
<dl>
<dt>Amount</dt><dd data-testid="result-amount">${payment.currency} ${toFiuuAmount(payment.amount)}</dd>
${payment.description ? html`<dt>For</dt><dd>${payment.description}</dd>` : ""}
<dt>Order</dt><dd data-testid="result-order">${payment.orderId}</dd>
<dt>Reference</dt><dd data-testid="result-reference">${payment.id}</dd>
${payment.tranId ? html`<dt>Fiuu transaction</dt><dd>${payment.tranId}</dd>` : ""}
<dt>Status</dt><dd><span class="code" data-testid="payment-status">${payment.status}</span></dd>
</dl>
${final ? "" : html`<p class="muted" data-testid="result-refreshing">This page refreshes every few seconds until the payment is settled.</p>`}
<div class="links">
${links.retryUrl ? html`<a class="button" href="${links.retryUrl}" data-testid="result-retry">Try again</a>` : ""}
${links.backUrl ? html`<a class="button ${links.retryUrl ? "secondary" : ""}" href="${links.backUrl}" data-testid="result-back">Back to the shop</a>` : ""}
</div>
${!links.backUrl && payment.status === "failed" ? html`<p class="muted">To try again, return to the shop's page and pay once more.</p>` : ""}
<p class="muted small">Keep the reference if you contact the shop about this payment.</p>`,
    { refreshSeconds: final ? undefined : 3 },
  );
}
