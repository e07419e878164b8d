import { eq } from "drizzle-orm";
import { payments } from "../../drizzle/schema.js";
import type { AppDeps } from "../context.js";
import { FiuuProtocolError, FiuuUnavailableError } from "../fiuu/client.js";
import { toFiuuAmount } from "../money.js";
import { applyRefundOutcome } from "./outcome.js";
import type { RefundRow } from "./resource.js";

/**
 * Asks Fiuu to make a pending refund and records its answer. Safe to repeat: Fiuu treats the same
 * RefID as the same refund. When Fiuu cannot be reached (or its answer is refused), the refund
 * stays pending and the poll job asks again later.
 */
export async function sendRefundToFiuu(deps: AppDeps, refund: RefundRow, requestId?: string): Promise<RefundRow> {
  const [payment] = await deps.database.db.select({ tranId: payments.tranId }).from(payments).where(eq(payments.id, refund.paymentId)).limit(1);
  try {
    const answer = await deps.fiuu.refund({
      refId: refund.refId,
      txnId: payment!.tranId!,
      amount: toFiuuAmount(refund.amount),
      notifyUrl: `${deps.config.publicUrl}/webhooks/fiuu/refund`,
    });
    if (answer.kind === "rejected") {
      return applyRefundOutcome(deps, refund.id, { status: "failed", failureCode: answer.code, failureMessage: answer.message, source: "answer", requestId });
    }
    return applyRefundOutcome(deps, refund.id, { status: answer.status, fiuuRefundId: answer.refundId, source: "answer", requestId });
  } catch (error) {
    if (!(error instanceof FiuuUnavailableError) && !(error instanceof FiuuProtocolError)) throw error;
    deps.logger.warn({ refund_id: refund.id, error: error.name, reason: error.message }, "refund not confirmed by Fiuu; the poll job will ask again");
    return refund;
  }
}
