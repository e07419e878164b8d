import type { AppDeps } from "./deps.js";
import { ApiError } from "../core/errors.js";
import { applyFiuuReport, type ReportResult } from "./payments/reports.js";
import { resultLocation } from "./payments/result-page.js";
import { applyRefundNotice } from "./refunds/jobs.js";

/** What a callback's answer must read exactly, or Fiuu sends it again (FIUU.md §2). */
export const callbackAcknowledgement = "CBTOKEN:MPSTATOK";

function refuseRejected(result: ReportResult): void {
  if (result.outcome === "rejected") throw new ApiError("invalid_request", `Report refused: ${result.detail}.`);
}

/**
 * A notification or callback from Fiuu, stored and applied before it is answered; a refused one
 * (its signature fails, or it cannot be read) is 400. callbackurl doubles as the notification URL,
 * so either kind may arrive at either URL: `callback` (nbcb=1) says which acknowledgement it needs.
 */
export async function acceptServerReport(deps: AppDeps, fields: Record<string, string>, requestId?: string): Promise<{ callback: boolean }> {
  refuseRejected(await applyFiuuReport(deps, fields, requestId));
  return { callback: fields.nbcb === "1" };
}

/**
 * The shopper's return from Fiuu, applied like a report: where the shopper goes next, or undefined
 * when it names no payment we know. The shopper is not to blame for a bad signature: they still go
 * on to see the payment's real (unchanged) status; only a refused report naming no payment is 400.
 */
export async function acceptReturn(deps: AppDeps, fields: Record<string, string>, requestId?: string): Promise<string | undefined> {
  const result = await applyFiuuReport(deps, fields, requestId);
  if (!result.payment) {
    refuseRejected(result);
    return undefined;
  }
  return resultLocation(deps.config.publicUrl, result.payment);
}

/** Fiuu's refund notice, applied before it is answered; one whose Signature does not verify is 400. */
export async function acceptRefundNotice(deps: AppDeps, fields: Record<string, string>, requestId?: string): Promise<void> {
  const outcome = await applyRefundNotice(deps, fields, requestId);
  if (outcome === "rejected") throw new ApiError("invalid_request", "Refund notice refused: its Signature does not verify.");
}
