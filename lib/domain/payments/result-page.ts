import type { AppDeps } from "../deps.js";
import { findOrderHolder, findPaymentById } from "./queries.js";
import { bringRequeryForward } from "./requery-queue.js";
import type { PaymentRow } from "./resource.js";
import { isShownFinal } from "./transitions.js";

/** Where the shopper goes after Fiuu: the shop's return_url with payment_id and status, or our result page. */
export function resultLocation(publicUrl: string, payment: PaymentRow): string {
  if (!payment.returnUrl) return `${publicUrl}/pay/${payment.id}/result`;
  const url = new URL(payment.returnUrl);
  url.searchParams.set("payment_id", payment.id);
  url.searchParams.set("status", payment.status);
  return url.toString();
}

/** What the shopper's result page shows: the payment, whether its status is final, and where its links go. */
export interface ResultPageView {
  payment: PaymentRow;
  final: boolean;
  backUrl?: string;
  retryUrl?: string;
}

/**
 * The result page of a payment, or undefined for an unknown one. A shopper is waiting on this page
 * (it refreshes every 3 s): an unsettled payment sent to Fiuu has its requery brought forward.
 */
export async function resultPageView(deps: AppDeps, id: string): Promise<ResultPageView | undefined> {
  const db = deps.database.db;
  const payment = await findPaymentById(db, id);
  if (!payment) return undefined;
  const final = isShownFinal(payment.status);
  if (!final && payment.checkoutStartedAt) {
    // Ask Fiuu soon rather than on the slow schedule: at most once per payment per 5 minutes, behind
    // every requery and expiry due earlier, and not at all without Redis, so no refreshing can delay
    // other payments.
    await bringRequeryForward(deps, payment.id);
  }
  const backUrl = payment.returnUrl ? resultLocation(deps.config.publicUrl, payment) : undefined;
  // "Try again" sends the shopper to the shop (a browser never creates a payment or chooses an
  // amount): only for a declined payment whose order no other payment holds (create.ts's rule).
  let retryUrl: string | undefined;
  if (backUrl && payment.status === "failed" && !(await findOrderHolder(db, payment.orderId, { except: payment.id }))) {
    const url = new URL(backUrl);
    url.searchParams.set("action", "retry");
    retryUrl = url.toString();
  }
  return { payment, final, backUrl, retryUrl };
}
