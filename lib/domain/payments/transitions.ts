import type { PaymentStatus } from "../../../drizzle/schema.js";
import type { EventType } from "../webhooks/events.js";

/** Fiuu's status codes: 00 success, 11 failed, 22 pending. */
export type FiuuStatus = "00" | "11" | "22";

export interface PaymentFacts {
  status: PaymentStatus;
  amount: number;
  currency: string;
  tranId: string | null;
}

export interface ReportFacts {
  status: FiuuStatus;
  /** Minor units, parsed from Fiuu's amount string. */
  amount: number;
  currency: string;
  tranId: string;
}

export type Outcome = "applied" | "duplicate" | "stale" | "conflict";

export interface Decision {
  outcome: Outcome;
  /** The payment's next status, when it changes. */
  next?: PaymentStatus;
  events: EventType[];
  /** Why, in a few words, for the gateway message's detail. */
  reason: string;
}

const reportedStatus: Record<FiuuStatus, PaymentStatus> = { "00": "succeeded", "11": "failed", "22": "pending" };
const eventFor: Partial<Record<PaymentStatus, EventType>> = {
  pending: "payment.pending",
  succeeded: "payment.succeeded",
  failed: "payment.failed",
  conflicted: "payment.conflicted",
};

/**
 * What a verified report from Fiuu does to a payment. Pure: the caller holds the payment's row
 * lock and applies the decision in the same transaction.
 *
 * - A verified success is never lost: it moves failed, cancelled and expired to succeeded
 *   (`payment.late_success`), because money that was taken must be recorded.
 * - Nothing moves a payment out of succeeded; a late 11 or 22 is stale. A success under another
 *   tranID is a second charge (`payment.duplicate_charge`) for a refund decision.
 * - A report for another amount or currency moves an unsettled payment to conflicted.
 * - Conflicted is left to a person: later reports are recorded and change nothing.
 */
export function decideTransition(payment: PaymentFacts, report: ReportFacts): Decision {
  const matches = report.amount === payment.amount && report.currency === payment.currency;
  const sameTran = payment.tranId === null || payment.tranId === report.tranId;
  const target = reportedStatus[report.status];

  if (payment.status === "succeeded") {
    if (report.status === "00" && !sameTran) {
      return { outcome: "applied", events: ["payment.duplicate_charge"], reason: "second successful tranID" };
    }
    if (!matches) return { outcome: "conflict", events: [], reason: "amount or currency differs from a settled payment" };
    if (report.status === "00") return { outcome: "duplicate", events: [], reason: "already succeeded" };
    return { outcome: "stale", events: [], reason: `late ${report.status} after success` };
  }
  if (payment.status === "conflicted") {
    return { outcome: matches ? "stale" : "conflict", events: [], reason: "payment is conflicted; left to an operator" };
  }
  if (!matches) {
    return { outcome: "conflict", next: "conflicted", events: ["payment.conflicted"], reason: "amount or currency differs" };
  }

  switch (payment.status) {
    case "created":
      return { outcome: "applied", next: target, events: [eventFor[target]!], reason: `created → ${target}` };
    case "pending":
      if (report.status === "22") return { outcome: "duplicate", events: [], reason: "already pending" };
      return { outcome: "applied", next: target, events: [eventFor[target]!], reason: `pending → ${target}` };
    case "failed":
    case "cancelled":
    case "expired":
      if (report.status === "00") {
        return { outcome: "applied", next: "succeeded", events: ["payment.late_success"], reason: `success after ${payment.status}` };
      }
      if (payment.status === "failed" && report.status === "11") return { outcome: "duplicate", events: [], reason: "already failed" };
      return { outcome: "stale", events: [], reason: `${report.status} after ${payment.status}` };
  }
}
