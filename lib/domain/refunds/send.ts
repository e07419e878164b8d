import { and, eq, sql } from "drizzle-orm";
import { gatewayMessages } from "../../../drizzle/schema.js";
import type { AppDeps } from "../deps.js";
import { FiuuProtocolError, FiuuUnavailableError, type RefundBeneficiary } from "../../adapters/fiuu/client.js";
import { toFiuuAmount } from "../../core/money.js";
import { findPaymentTranId } from "../payments/queries.js";
import { applyRefundOutcome } from "./outcome.js";
import type { RefundRow } from "./resource.js";

/** The beneficiary as stored (encrypted JSON), in API field names. */
export interface StoredBeneficiary {
  bank_code: string;
  name: string;
  account_number: string;
  country: string;
}

/**
 * Sends a pending refund's request to Fiuu, once, and records a decided answer (FIUU.md §4). Only
 * an answer that decides the refund changes it: an accepted refund follows Fiuu's status, a final
 * refusal fails it. Everything else leaves it pending, its reserved amount held, for the status
 * poll to resolve by asking Fiuu (q_by_refID) before anything is sent again: no answer (timeout,
 * lost connection, 5xx, breaker open), an answer that cannot be believed, PR016 (the RefID is known:
 * the refund may exist), PR015/PR020 (busy, balance) and PR010 for a payment that went through pending.
 */
export async function sendRefundToFiuu(deps: AppDeps, refund: RefundRow, requestId?: string): Promise<RefundRow> {
  const payment = await findPaymentTranId(deps.database.db, refund.paymentId);
  let answer: Awaited<ReturnType<AppDeps["fiuu"]["refund"]>>;
  try {
    answer = await deps.fiuu.refund({
      refId: refund.refId,
      txnId: payment!.tranId!,
      amount: toFiuuAmount(refund.amount),
      notifyUrl: `${deps.config.publicUrl}/webhooks/fiuu/refund`,
      beneficiary: beneficiaryOf(deps, refund),
    });
  } catch (error) {
    if (!(error instanceof FiuuUnavailableError) && !(error instanceof FiuuProtocolError)) throw error;
    deps.logger.warn(
      { refund_id: refund.id, error: error.name, reason: error.message },
      "refund outcome unknown; the status poll asks Fiuu before sending it again",
    );
    return refund;
  }
  if (answer.kind === "accepted") {
    return applyRefundOutcome(deps, refund.id, { status: answer.status, fiuuRefundId: answer.refundId, source: "answer", requestId });
  }
  const log = { refund_id: refund.id, code: answer.code };
  switch (answer.refusal) {
    case "exists":
      deps.logger.warn(log, "Fiuu knows this RefID already (PR016); the status poll looks the refund up");
      return refund;
    case "retry":
      deps.logger[answer.code === "PR020" ? "error" : "warn"](log, "Fiuu cannot take the refund now; it is sent again later");
      return refund;
    case "unknown":
      deps.logger.warn(log, "Fiuu answered a refund code this service does not know; the status poll looks the refund up");
      return refund;
    case "retry_if_pending":
      if (await wentThroughPending(deps, refund.paymentId)) {
        deps.logger.warn(log, "Fiuu has not captured the payment yet (PR010); the refund is sent again later");
        return refund;
      }
      break;
    case "misconfigured":
    case "final":
      break;
  }
  return applyRefundOutcome(deps, refund.id, {
    status: "failed",
    failureCode: answer.code,
    failureMessage: answer.message,
    source: "answer",
    requestId,
  });
}

/** The refund's beneficiary, decrypted, as the Fiuu client takes it; undefined for a card refund. */
function beneficiaryOf(deps: AppDeps, refund: RefundRow): RefundBeneficiary | undefined {
  if (!refund.beneficiary) return undefined;
  const stored = JSON.parse(deps.cipher.decrypt(refund.beneficiary)) as StoredBeneficiary;
  return { bankCode: stored.bank_code, name: stored.name, accountNumber: stored.account_number, country: stored.country };
}

/** Whether Fiuu ever reported the payment pending (a signed 22): its capture may still be on the way. */
async function wentThroughPending(deps: AppDeps, paymentId: string): Promise<boolean> {
  const rows = await deps.database.db
    .select({ one: sql`1` })
    .from(gatewayMessages)
    .where(and(eq(gatewayMessages.paymentId, paymentId), eq(gatewayMessages.status, "22"), eq(gatewayMessages.signatureValid, true)))
    .limit(1);
  return rows.length > 0;
}
