import type { PaymentStatus } from "../../../drizzle/schema.js";
import { ApiError } from "../../core/errors.js";
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
 * What a verified report from Fiuu does to a payment. Pure: the caller applies the decision only to
 * the payment as it was decided on (payments/reports.ts: guarded by its row version, or under its
 * row lock).
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

/**
 * Every move a payment's status can make, whatever makes it: Fiuu's reports (decideTransition),
 * cancel and expiry. Succeeded and conflicted are never left; a verified success leaves any other.
 */
export const paymentMoves: Record<PaymentStatus, readonly PaymentStatus[]> = {
  created: ["pending", "succeeded", "failed", "conflicted", "cancelled", "expired"],
  pending: ["succeeded", "failed", "conflicted"],
  failed: ["succeeded", "conflicted"],
  cancelled: ["succeeded", "conflicted"],
  expired: ["succeeded", "conflicted"],
  succeeded: [],
  conflicted: [],
};

/** Whether a payment may move from one status to the other. */
export const canMove = (from: PaymentStatus, to: PaymentStatus): boolean => paymentMoves[from].includes(to);

/** What can be asked of a payment besides Fiuu's reports. */
export type PaymentOperation = "cancel" | "expire" | "checkout" | "refund";

/**
 * The statuses each operation is allowed in. Only `created` can be cancelled, expired or sent to
 * Fiuu: once Fiuu reports it pending, money may be on its way. Only `succeeded` can be refunded.
 */
export const operationStatuses: Record<PaymentOperation, readonly PaymentStatus[]> = {
  cancel: ["created"],
  expire: ["created"],
  checkout: ["created"],
  refund: ["succeeded"],
};

/** The status an operation moves a payment to, for those that move it. */
export const operationTarget: Partial<Record<PaymentOperation, PaymentStatus>> = { cancel: "cancelled", expire: "expired" };

/** Whether a payment in this status allows the operation (its status alone; see operationRefusal). */
export const allows = (status: PaymentStatus, operation: PaymentOperation): boolean => operationStatuses[operation].includes(status);

/** Statuses that hold an order: while one of its payments is in one, no other payment can be created for it. */
export const orderHoldingStatuses = ["created", "pending", "succeeded", "conflicted"] as const satisfies readonly PaymentStatus[];

/** Statuses Fiuu may still settle: a reconciliation asks about them, a report brings the next question forward. */
export const unsettledStatuses = ["created", "pending"] as const satisfies readonly PaymentStatus[];

/** Whether Fiuu may still settle a payment in this status. */
export const isUnsettled = (status: PaymentStatus): boolean => (unsettledStatuses as readonly PaymentStatus[]).includes(status);

/** Whether the result page's shopper has their answer: every status but created and pending. */
export const isShownFinal = (status: PaymentStatus): boolean => !isUnsettled(status);

/** Whether a payment is due to expire: created and past its expires_at. */
export const isExpiryDue = (payment: { status: PaymentStatus; expiresAt: Date }, now: Date): boolean =>
  allows(payment.status, "expire") && payment.expiresAt.getTime() <= now.getTime();

/** What an operation's guard needs to know of a payment. */
export interface OperationFacts {
  id: string;
  status: PaymentStatus;
  expiresAt: Date;
  tranId: string | null;
}

/**
 * Why a payment refuses an operation now, as the API answers it (409 invalid_state), or undefined
 * when it allows it. A checkout also needs the payment unexpired; a refund, Fiuu's tranID.
 */
export function operationRefusal(operation: PaymentOperation, payment: OperationFacts, now: Date): ApiError | undefined {
  const { id, status } = payment;
  switch (operation) {
    case "cancel":
      if (!allows(status, "cancel")) return new ApiError("invalid_state", `Payment ${id} is ${status}; only a created payment can be cancelled.`);
      return undefined;
    case "checkout":
      if (!allows(status, "checkout")) return new ApiError("invalid_state", `Payment ${id} is ${status}; checkout is over.`);
      if (payment.expiresAt <= now) return new ApiError("invalid_state", `Payment ${id} expired at ${payment.expiresAt.toISOString()}.`);
      return undefined;
    case "refund":
      if (!allows(status, "refund") || !payment.tranId) {
        return new ApiError("invalid_state", `Payment ${id} is ${status}; only a succeeded payment can be refunded.`);
      }
      return undefined;
    case "expire":
      if (!allows(status, "expire")) return new ApiError("invalid_state", `Payment ${id} is ${status}; only a created payment can expire.`);
      return undefined;
  }
}

/** Throws operationRefusal's error when the payment refuses the operation. */
export function assertAllows(operation: PaymentOperation, payment: OperationFacts, now: Date): void {
  const refusal = operationRefusal(operation, payment, now);
  if (refusal) throw refusal;
}
