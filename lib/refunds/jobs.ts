import { eq } from "drizzle-orm";
import { gatewayMessages, refunds } from "../../drizzle/schema.js";
import type { AppDeps } from "../context.js";
import { FiuuProtocolError, FiuuUnavailableError } from "../fiuu/client.js";
import { verifyRefundNotice } from "../fiuu/signatures.js";
import type { JobResult } from "../jobs/loop.js";
import type { Job } from "../jobs/queue.js";
import { applyRefundOutcome } from "./outcome.js";
import type { RefundRow } from "./resource.js";
import { sendRefundToFiuu } from "./send.js";

const pollEveryMs = 5 * 60_000;
const stopPollingAfterMs = 14 * 86_400_000;

/**
 * The refund status poll: asks Fiuu where a pending refund stands (q_by_refID) and records a final
 * answer. A refund Fiuu has never heard of (PR004: the request was lost, or this process died
 * before sending it) is sent again under the same RefID.
 */
export async function runRefundPoll(deps: AppDeps, job: Job): Promise<JobResult> {
  const [refund] = await deps.database.db.select().from(refunds).where(eq(refunds.id, String(job.payload.refundId))).limit(1);
  if (!refund || refund.status !== "pending") return { done: true };
  const now = deps.now();
  try {
    const answer = await deps.fiuu.refundStatus(refund.refId);
    let current: RefundRow;
    if (answer.kind === "rejected") {
      if (answer.code !== "PR004") throw new FiuuProtocolError(`refund status refused: ${answer.code}`, { code: answer.code });
      current = await sendRefundToFiuu(deps, refund, `job-${job.id}`);
    } else {
      current = await applyRefundOutcome(deps, refund.id, { status: answer.status, fiuuRefundId: answer.refundId, source: "poll", requestId: `job-${job.id}` });
    }
    if (current.status !== "pending") return { done: true };
  } catch (error) {
    if (!(error instanceof FiuuUnavailableError) && !(error instanceof FiuuProtocolError)) throw error;
    return { retryAt: new Date(now.getTime() + Math.min(pollEveryMs * 6, 30_000 * 2 ** Math.min(job.attempts, 10))), error: `${error.name}: ${error.message}` };
  }
  if (now.getTime() - refund.createdAt.getTime() > stopPollingAfterMs) {
    deps.logger.warn({ refund_id: refund.id }, "refund still pending after 14 days; polling stops");
    return { failed: "still pending after 14 days" };
  }
  return { retryAt: new Date(now.getTime() + pollEveryMs), error: "Fiuu reports the refund pending" };
}

const noticeStatus: Record<string, "succeeded" | "failed" | "pending" | undefined> = {
  "00": "succeeded",
  success: "succeeded",
  "11": "failed",
  rejected: "failed",
  "22": "pending",
  pending: "pending",
  processing: "pending",
};

/**
 * Fiuu's refund notice (the notify_url of the refund request): believed only when its Signature,
 * computed like the refund answer's over the exact fields received, holds.
 */
export async function applyRefundNotice(deps: AppDeps, fields: Record<string, string>, requestId?: string): Promise<"applied" | "rejected" | "orphan"> {
  const { fiuu } = deps.config;
  const signed = verifyRefundNotice(fields, fiuu.merchantId!, fiuu.secretKey!);
  const status = noticeStatus[fields.Status ?? ""];
  const [refund] = await deps.database.db.select().from(refunds).where(eq(refunds.refId, fields.RefID ?? "")).limit(1);
  const outcome = !signed || !status ? "rejected" : refund ? "applied" : "orphan";
  await deps.database.db.insert(gatewayMessages).values({
    kind: "refund_notice",
    paymentId: refund?.paymentId,
    refundId: refund?.id,
    tranId: fields.TxnID ?? null,
    status: fields.Status ?? null,
    fields,
    signatureValid: signed,
    outcome,
    detail: !signed ? "Signature does not verify" : !status ? `unknown status ${fields.Status}` : refund ? undefined : "no refund has this RefID",
    receivedAt: deps.now(),
  });
  deps.metrics.fiuuMessages.inc({ kind: "refund_notice", outcome });
  if (outcome === "applied" && refund && status) {
    await applyRefundOutcome(deps, refund.id, { status, fiuuRefundId: fields.RefundID, failureMessage: fields.reason, source: "notice", requestId });
  }
  return outcome;
}
