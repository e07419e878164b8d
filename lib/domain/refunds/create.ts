import { refunds } from "../../../drizzle/schema.js";
import { appendAudit } from "../audit.js";
import type { AppDeps } from "../deps.js";
import { ApiError } from "../../core/errors.js";
import { recordEvent } from "../webhooks/events.js";
import { newId } from "../../core/ids.js";
import { enqueueJob } from "../job-queue.js";
import { lockPayment, notFound } from "../payments/queries.js";
import { reserveRefund } from "../payments/statements.js";
import { assertAllows } from "../payments/transitions.js";
import { refundResource, type RefundRow } from "./resource.js";
import { sendRefundToFiuu, type StoredBeneficiary } from "./send.js";
import { isCardChannel } from "../../adapters/fiuu/channels.js";

/** Where a non-card refund is paid, as the API takes it. */
export interface BeneficiaryInput {
  bank_code: string;
  name: string;
  account_number: string;
  country?: string;
}

const beneficiaryFields = ["beneficiary.bank_code", "beneficiary.name", "beneficiary.account_number"];

/**
 * Fiuu refunds a non-card payment (FPX, e-wallet, QR, cash) only to a bank account it is given
 * (PR014) and refuses one for a card payment (PR012): both are checked here, before Fiuu is asked.
 * A channel that says too little (the shopper chose on Fiuu's page and no server report named it)
 * is left to Fiuu's answer.
 */
function checkBeneficiary(channel: string | null, beneficiary: BeneficiaryInput | undefined): void {
  const card = isCardChannel(channel);
  if (card === false && !beneficiary) {
    throw new ApiError(
      "beneficiary_required",
      `The payment was made through ${channel}, not a card: Fiuu refunds it to a bank account, so give beneficiary.bank_code, beneficiary.name and beneficiary.account_number.`,
      {
        errors: beneficiaryFields.map((field) => ({ field, message: "required for a non-card payment" })),
      },
    );
  }
  if (card === true && beneficiary) {
    throw new ApiError("beneficiary_not_applicable", "The payment was made by card: Fiuu refunds it to the card, so leave beneficiary out.", {
      errors: [{ field: "beneficiary", message: "not applicable to a card payment" }],
    });
  }
}

/** The beneficiary encrypted (never stored in clear), and what answers show of it. */
function storedBeneficiary(deps: AppDeps, input: BeneficiaryInput) {
  const stored: StoredBeneficiary = {
    bank_code: input.bank_code,
    name: input.name,
    account_number: input.account_number,
    country: input.country ?? "MY",
  };
  return {
    beneficiary: deps.cipher.encrypt(JSON.stringify(stored)),
    beneficiaryMasked: { bank_code: stored.bank_code, country: stored.country, account_number_last4: stored.account_number.slice(-4) },
  };
}

/** How soon the status poll looks at a refund Fiuu has not settled (or that never reached Fiuu). */
export const refundPollDelayMs = 60_000;

/**
 * Refunds (part of) a succeeded payment. The refundable rest is checked and reserved with the
 * payment row locked, so concurrent refunds can never sum above the payment (a CHECK constraint
 * stands behind it). The refund and its poll job are committed before Fiuu is asked, so a crash
 * in between leaves a pending refund that the poll job sends again under the same RefID.
 */
export async function createRefund(
  deps: AppDeps,
  paymentId: string,
  input: { amount?: number; reason?: string; beneficiary?: BeneficiaryInput },
  audit: { actor: string; createdBy: string; requestId?: string },
): Promise<RefundRow> {
  const now = deps.now();
  const id = newId("re", now.getTime());
  const refund = await deps.database.db.transaction(async (tx) => {
    const payment = await lockPayment(tx, paymentId);
    if (!payment) throw notFound(paymentId);
    assertAllows("refund", payment, now);
    checkBeneficiary(payment.paidChannel ?? payment.channel, input.beneficiary);
    const refundable = payment.amount - payment.amountRefundReserved;
    const amount = input.amount ?? refundable;
    if (refundable <= 0 || amount > refundable) {
      throw new ApiError("amount_exceeds_refundable", `At most ${refundable} of ${payment.amount} can still be refunded.`, {
        fields: { refundable },
      });
    }
    await reserveRefund(tx, paymentId, amount, now);
    const [row] = await tx
      .insert(refunds)
      .values({
        id,
        paymentId,
        amount,
        currency: payment.currency,
        reason: input.reason ?? null,
        ...(input.beneficiary ? storedBeneficiary(deps, input.beneficiary) : {}),
        // Fiuu's RefID: unique per refund and alphanumeric, so a resend is recognised as the same refund.
        refId: id.replace("_", ""),
        createdBy: audit.createdBy,
        createdAt: now,
        updatedAt: now,
      })
      .returning();
    await recordEvent(tx, deps.config.webhooks.urls, { type: "refund.pending", paymentId, refundId: id, data: refundResource(row!), now });
    await enqueueJob(tx, {
      kind: "refund_poll",
      payload: { refundId: id },
      dedupeKey: `refund_poll:${id}`,
      runAt: new Date(now.getTime() + refundPollDelayMs),
      maxAttempts: 1000,
    });
    await appendAudit(tx, {
      actor: audit.actor,
      action: "refund.created",
      entityType: "refund",
      entityId: id,
      requestId: audit.requestId,
      data: { payment_id: paymentId, amount, reason: input.reason ?? null },
    });
    return row!;
  });
  deps.metrics.refunds.inc({ status: "pending" });
  deps.metrics.paymentEvents.inc({ type: "refund.pending" });
  return sendRefundToFiuu(deps, refund, audit.requestId);
}
