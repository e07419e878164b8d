import { eq } from "drizzle-orm";
import { refunds } from "../../../drizzle/schema.js";
import type { AppDeps } from "../deps.js";
import { FiuuProtocolError, FiuuUnavailableError } from "../../adapters/fiuu/client.js";
import { normaliseRefundStatus } from "../../adapters/fiuu/refund-answers.js";
import { verifyRefundNotice } from "../../adapters/fiuu/signatures.js";
import type { JobResult } from "../job-queue.js";
import type { Job } from "../job-queue.js";
import { storeGatewayMessage } from "../payments/reports.js";
import { truncateText } from "../../core/text.js";
import { applyRefundOutcome } from "./outcome.js";
import type { RefundRow } from "./resource.js";
import { sendRefundToFiuu } from "./send.js";

const minute = 60_000;
const stopPollingAfterMs = 14 * 86_400_000;

/** The delay before the next poll: 1, 2, 4, … minutes, then every 30 minutes. */
function nextPollDelay(attempts: number): number {
  return Math.min(30 * minute, minute * 2 ** Math.min(Math.max(attempts - 1, 0), 10));
}

/**
 * The refund status poll: asks Fiuu where a pending refund stands (q_by_refID) before anything
 * else, and records a decided answer. Only "not found" (INQ006: the request never reached Fiuu,
 * or this process died before sending it, or Fiuu refused it as busy) lets it send the request
 * again, under the same RefID. An unknown outcome never fails the refund or frees its amount.
 */
export async function runRefundPoll(deps: AppDeps, job: Job): Promise<JobResult> {
  const [refund] = await deps.database.db
    .select()
    .from(refunds)
    .where(eq(refunds.id, String(job.payload.refundId)))
    .limit(1);
  if (refund?.status !== "pending") return { done: true };
  const now = deps.now();
  const later = (error: string): JobResult => ({ retryAt: new Date(now.getTime() + nextPollDelay(job.attempts)), error });
  let current: RefundRow;
  try {
    const answer = await deps.fiuu.refundStatus(refund.refId);
    if (answer.kind === "rejected") return later(`refund status refused: ${answer.code}`);
    current =
      answer.kind === "not_found"
        ? await sendRefundToFiuu(deps, refund, `job-${job.id}`)
        : await applyRefundOutcome(deps, refund.id, {
            status: answer.status,
            fiuuRefundId: answer.refundId,
            source: "poll",
            requestId: `job-${job.id}`,
          });
  } catch (error) {
    if (!(error instanceof FiuuUnavailableError) && !(error instanceof FiuuProtocolError)) throw error;
    return later(`${error.name}: ${error.message}`);
  }
  if (current.status !== "pending") return { done: true };
  if (now.getTime() - refund.createdAt.getTime() > stopPollingAfterMs) {
    deps.logger.error({ refund_id: refund.id }, "refund still pending after 14 days; polling stops, the refund stays pending for an operator");
    return { failed: "still pending after 14 days" };
  }
  return later("Fiuu reports the refund pending");
}

/**
 * Fiuu's refund notice (the notify_url of the refund request), JSON or form-encoded: believed only
 * when its Signature, computed like the refund answer's over the Status as a code, holds. It
 * settles a refund this service made; it never creates one.
 */
export async function applyRefundNotice(
  deps: AppDeps,
  fields: Record<string, string>,
  requestId?: string,
): Promise<"applied" | "rejected" | "orphan"> {
  const { fiuu } = deps.config;
  const signed = verifyRefundNotice(fields, fiuu.merchantId, fiuu.secretKey);
  const status = normaliseRefundStatus(fields.Status ?? "");
  const [refund] = await deps.database.db
    .select()
    .from(refunds)
    .where(eq(refunds.refId, truncateText(fields.RefID ?? "", 100)))
    .limit(1);
  const outcome = !signed || !status ? "rejected" : refund ? "applied" : "orphan";
  const stored = storableNoticeFields(fields);
  await storeGatewayMessage(deps.database.db, {
    kind: "refund_notice",
    fields: stored,
    signatureValid: signed,
    outcome,
    detail: !signed ? "Signature does not verify" : !status ? `unknown status ${stored.Status}` : refund ? undefined : "no refund has this RefID",
    paymentId: refund?.paymentId,
    refundId: refund?.id,
    keys: { tranId: stored.TxnID, status: stored.Status },
    now: deps.now(),
  });
  deps.metrics.fiuuMessages.inc({ kind: "refund_notice", outcome });
  if (outcome === "applied" && refund && status) {
    await applyRefundOutcome(deps, refund.id, { status, fiuuRefundId: fields.RefundID, failureMessage: fields.reason, source: "notice", requestId });
  }
  return outcome;
}

const noticeFieldCaps: Record<string, number> = {
  RefundType: 4,
  MerchantID: 64,
  RefID: 100,
  RefundID: 40,
  TxnID: 40,
  Amount: 24,
  Status: 16,
  Signature: 64,
  reason: 255,
  FPXTxnID: 64,
  LastUpdate: 32,
};

/** A refund notice's documented fields, each capped; nothing else a sender adds is stored. */
function storableNoticeFields(fields: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(noticeFieldCaps)
      .filter(([name]) => typeof fields[name] === "string")
      .map(([name, cap]) => [name, truncateText(fields[name]!, cap)]),
  );
}
