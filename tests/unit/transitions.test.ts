import { describe, expect, it } from "vitest";
import { paymentStatuses, type PaymentStatus } from "../../drizzle/schema.js";
import { decideTransition, type FiuuStatus } from "../../lib/domain/payments/transitions.js";

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
          const decision = decideTransition({ status: "succeeded", amount: 1050, currency: "MYR", tranId: "1000001" }, { status: reported, amount, currency: "MYR", tranId });
          expect(decision.next).toBeUndefined();
        }
      }
    }
  });
});
