import { describe, expect, it } from "vitest";
import { paymentStatuses, type PaymentStatus } from "../../drizzle/schema.js";
import {
  allows,
  canMove,
  decideTransition,
  isExpiryDue,
  isShownFinal,
  isUnsettled,
  operationRefusal,
  operationStatuses,
  operationTarget,
  orderHoldingStatuses,
  paymentMoves,
  type FiuuStatus,
  type PaymentOperation,
} from "../../lib/domain/payments/transitions.js";

type Row = [PaymentStatus, FiuuStatus, "match" | "amount" | "currency", "same" | "other", string, PaymentStatus | null, string[]];

// Every payment status × every Fiuu status × matching or not × same or another tranID.
// Columns: current, reported, amount/currency, tranID, outcome, next status (null = unchanged), events.
const table: Row[] = [
  ["created", "00", "match", "same", "applied", "succeeded", ["payment.succeeded"]],
  ["created", "11", "match", "same", "applied", "failed", ["payment.failed"]],
  ["created", "22", "match", "same", "applied", "pending", ["payment.pending"]],
  ["created", "00", "amount", "same", "conflict", "conflicted", ["payment.conflicted"]],
  ["created", "00", "currency", "same", "conflict", "conflicted", ["payment.conflicted"]],
  ["created", "11", "amount", "same", "conflict", "conflicted", ["payment.conflicted"]],
  ["created", "22", "amount", "same", "conflict", "conflicted", ["payment.conflicted"]],
  ["pending", "00", "match", "same", "applied", "succeeded", ["payment.succeeded"]],
  ["pending", "00", "match", "other", "applied", "succeeded", ["payment.succeeded"]],
  ["pending", "11", "match", "same", "applied", "failed", ["payment.failed"]],
  ["pending", "22", "match", "same", "duplicate", null, []],
  ["pending", "22", "match", "other", "duplicate", null, []],
  ["pending", "00", "amount", "same", "conflict", "conflicted", ["payment.conflicted"]],
  ["pending", "11", "currency", "same", "conflict", "conflicted", ["payment.conflicted"]],
  ["succeeded", "00", "match", "same", "duplicate", null, []],
  ["succeeded", "00", "match", "other", "applied", null, ["payment.duplicate_charge"]],
  ["succeeded", "00", "amount", "other", "applied", null, ["payment.duplicate_charge"]],
  ["succeeded", "00", "amount", "same", "conflict", null, []],
  ["succeeded", "11", "match", "same", "stale", null, []],
  ["succeeded", "11", "match", "other", "stale", null, []],
  ["succeeded", "22", "match", "same", "stale", null, []],
  ["succeeded", "22", "currency", "same", "conflict", null, []],
  ["failed", "00", "match", "same", "applied", "succeeded", ["payment.late_success"]],
  ["failed", "00", "match", "other", "applied", "succeeded", ["payment.late_success"]],
  ["failed", "11", "match", "same", "duplicate", null, []],
  ["failed", "22", "match", "same", "stale", null, []],
  ["failed", "00", "amount", "same", "conflict", "conflicted", ["payment.conflicted"]],
  ["cancelled", "00", "match", "same", "applied", "succeeded", ["payment.late_success"]],
  ["cancelled", "11", "match", "same", "stale", null, []],
  ["cancelled", "22", "match", "same", "stale", null, []],
  ["cancelled", "00", "currency", "same", "conflict", "conflicted", ["payment.conflicted"]],
  ["expired", "00", "match", "same", "applied", "succeeded", ["payment.late_success"]],
  ["expired", "11", "match", "same", "stale", null, []],
  ["expired", "22", "match", "same", "stale", null, []],
  ["expired", "22", "amount", "same", "conflict", "conflicted", ["payment.conflicted"]],
  ["conflicted", "00", "match", "same", "stale", null, []],
  ["conflicted", "11", "match", "same", "stale", null, []],
  ["conflicted", "22", "match", "same", "stale", null, []],
  ["conflicted", "00", "amount", "same", "conflict", null, []],
];

describe("payment state machine", () => {
  it.each(table)("%s + %s (%s, %s tranID) → %s, %s, %j", (status, reported, fit, tran, outcome, next, events) => {
    const payment = { status, amount: 1050, currency: "MYR", tranId: status === "created" ? null : "1000001" };
    const report = {
      status: reported,
      amount: fit === "amount" ? 1000 : 1050,
      currency: fit === "currency" ? "SGD" : "MYR",
      tranId: tran === "same" ? "1000001" : "2000002",
    };
    const decision = decideTransition(payment, report);
    expect(decision.outcome).toBe(outcome);
    expect(decision.next ?? null).toBe(next);
    expect(decision.events).toEqual(events);
  });

  it("covers every status with every Fiuu status", () => {
    for (const status of paymentStatuses) {
      for (const reported of ["00", "11", "22"]) {
        expect(table.some(([s, r, fit]) => s === status && r === reported && fit === "match")).toBe(true);
      }
    }
  });

  it("never moves a payment out of succeeded", () => {
    for (const reported of ["00", "11", "22"] as const) {
      for (const amount of [1050, 1, 999999]) {
        for (const tranId of ["1000001", "9"]) {
          const decision = decideTransition(
            { status: "succeeded", amount: 1050, currency: "MYR", tranId: "1000001" },
            { status: reported, amount, currency: "MYR", tranId },
          );
          expect(decision.next).toBeUndefined();
        }
      }
    }
  });
});

describe("payment moves", () => {
  it("every move a Fiuu report makes is in the table of moves", () => {
    for (const status of paymentStatuses) {
      for (const reported of ["00", "11", "22"] as const) {
        for (const amount of [1050, 1000]) {
          for (const tranId of ["1000001", "2000002"]) {
            const payment = { status, amount: 1050, currency: "MYR", tranId: "1000001" };
            const decision = decideTransition(payment, { status: reported, amount, currency: "MYR", tranId });
            if (decision.next) expect(canMove(status, decision.next), `${status} → ${decision.next}`).toBe(true);
          }
        }
      }
    }
  });

  it("every move an operation makes is in the table of moves", () => {
    for (const [operation, target] of Object.entries(operationTarget)) {
      for (const status of operationStatuses[operation as PaymentOperation]) {
        expect(canMove(status, target), `${operation}: ${status} → ${target}`).toBe(true);
      }
    }
  });

  it("succeeded and conflicted are never left; no status moves to itself or to created", () => {
    expect(paymentMoves.succeeded).toEqual([]);
    expect(paymentMoves.conflicted).toEqual([]);
    for (const status of paymentStatuses) {
      expect(canMove(status, status)).toBe(false);
      expect(canMove(status, "created")).toBe(false);
    }
  });
});

type GuardRow = [PaymentOperation, PaymentStatus, boolean];
// Which operation each status allows: cancel, expire and checkout only created; refund only succeeded.
const guards: GuardRow[] = paymentStatuses.flatMap((status): GuardRow[] => [
  ["cancel", status, status === "created"],
  ["expire", status, status === "created"],
  ["checkout", status, status === "created"],
  ["refund", status, status === "succeeded"],
]);

describe("operation guards", () => {
  const now = new Date("2026-12-01T12:00:00.000Z");
  const later = new Date("2026-12-01T12:30:00.000Z");
  const facts = (status: PaymentStatus, overrides: { expiresAt?: Date; tranId?: string | null } = {}) => ({
    id: "pay_1",
    status,
    expiresAt: overrides.expiresAt ?? later,
    tranId: overrides.tranId === undefined ? "1000001" : overrides.tranId,
  });

  it.each(guards)("%s in %s: allowed %s", (operation, status, allowed) => {
    expect(allows(status, operation)).toBe(allowed);
    expect(operationRefusal(operation, facts(status), now) === undefined).toBe(allowed);
  });

  it("refuses with the API's codes and messages", () => {
    const refusal = (operation: PaymentOperation, f: ReturnType<typeof facts>) => {
      const error = operationRefusal(operation, f, now);
      return error && { code: error.code, detail: error.detail };
    };
    const invalidState = (detail: string) => ({ code: "invalid_state", detail });
    expect(refusal("cancel", facts("pending"))).toEqual(invalidState("Payment pay_1 is pending; only a created payment can be cancelled."));
    expect(refusal("checkout", facts("failed"))).toEqual(invalidState("Payment pay_1 is failed; checkout is over."));
    expect(refusal("checkout", facts("created", { expiresAt: now }))).toEqual(invalidState("Payment pay_1 expired at 2026-12-01T12:00:00.000Z."));
    expect(refusal("refund", facts("created"))).toEqual(invalidState("Payment pay_1 is created; only a succeeded payment can be refunded."));
    // A success without Fiuu's tranID cannot be refunded: Fiuu's refund names the transaction.
    expect(refusal("refund", facts("succeeded", { tranId: null }))).toEqual(
      invalidState("Payment pay_1 is succeeded; only a succeeded payment can be refunded."),
    );
    expect(refusal("expire", facts("cancelled"))).toEqual(invalidState("Payment pay_1 is cancelled; only a created payment can expire."));
  });

  it("a created payment is due to expire from its expires_at on, no other ever", () => {
    expect(isExpiryDue({ status: "created", expiresAt: later }, now)).toBe(false);
    expect(isExpiryDue({ status: "created", expiresAt: now }, now)).toBe(true);
    for (const status of paymentStatuses.filter((s) => s !== "created")) {
      expect(isExpiryDue({ status, expiresAt: now }, later)).toBe(false);
    }
  });

  it("an order is held by created, pending, succeeded and conflicted payments", () => {
    expect([...orderHoldingStatuses].sort()).toEqual(["conflicted", "created", "pending", "succeeded"]);
  });

  it("only created and pending are unsettled; the result page shows every other status as final", () => {
    for (const status of paymentStatuses) {
      expect(isUnsettled(status)).toBe(status === "created" || status === "pending");
      expect(isShownFinal(status)).toBe(!isUnsettled(status));
    }
  });
});
