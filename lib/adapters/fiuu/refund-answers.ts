import { parseFiuuAmount } from "../../core/money.js";
import { FiuuProtocolError } from "./client-errors.js";
import { refundAnswerSignature, refundStatusCode, safeEqualHex } from "./signatures.js";

// Reading Fiuu's refund answers (FIUU.md §4): pure functions, no I/O.

export type Fields = Record<string, string>;

/** What Fiuu says a refund stands at, normalised from its codes ("22", "00", "11") or words. */
export type RefundStatus = "pending" | "succeeded" | "failed";

const md5HexPattern = /^[0-9a-f]{32}$/;

const refundStatusWords: Record<string, RefundStatus> = {
  "22": "pending",
  pending: "pending",
  processing: "pending",
  "00": "succeeded",
  success: "succeeded",
  "11": "failed",
  rejected: "failed",
};

/** Normalises a refund status code or word; undefined for anything unknown. */
export function normaliseRefundStatus(status: string): RefundStatus | undefined {
  return Object.hasOwn(refundStatusWords, status.toLowerCase()) ? refundStatusWords[status.toLowerCase()] : undefined;
}

/**
 * What one of Fiuu's PRxxx refusals of a refund request means for the refund (FIUU.md §4):
 * - `exists`: PR016, the RefID was used before — the refund may well exist; look it up, never fail it;
 * - `retry`: PR015 (busy), PR020 (insufficient balance) — not made; send again later;
 * - `retry_if_pending`: PR010 (not captured yet) — retry when the payment went through pending, else final;
 * - `misconfigured`: PR001–PR008 — a bug or wrong keys here: final, and an alert;
 * - `final`: Fiuu decided not to refund (PR009, PR011–PR014, PR017–PR019);
 * - `unknown`: a code FIUU.md does not list — treated like an unknown outcome: look it up.
 */
export type RefundRefusal = "exists" | "retry" | "retry_if_pending" | "misconfigured" | "final" | "unknown";

const refusals: Record<string, RefundRefusal> = {
  PR016: "exists",
  PR015: "retry",
  PR020: "retry",
  PR010: "retry_if_pending",
  ...Object.fromEntries(["PR001", "PR002", "PR003", "PR004", "PR005", "PR006", "PR007", "PR008"].map((code) => [code, "misconfigured" as const])),
  ...Object.fromEntries(["PR009", "PR011", "PR012", "PR013", "PR014", "PR017", "PR018", "PR019"].map((code) => [code, "final" as const])),
};

/** Classifies a refund API error code. */
export function classifyRefundRefusal(code: string): RefundRefusal {
  return Object.hasOwn(refusals, code) ? refusals[code]! : "unknown";
}

/** Fiuu's refund status query answer for "no refund has this RefID" (FIUU.md §4); PR004 is not it. */
export const refundNotFoundCode = "INQ006";

/** One refund as Fiuu's refund status query reports it (unsigned: it may settle a refund, never create one). */
export interface RefundStatusEntry {
  refId: string;
  refundId: string;
  txnId: string;
  status: RefundStatus;
  fields: Fields;
}

/**
 * Reads a refund status answer — one object or a list of them (q_by_txn lists every refund of the
 * transaction) — and picks the entry for `refId`. Throws FiuuProtocolError when no entry is about
 * it, when it names another merchant, or its Status is not one Fiuu uses.
 */
export function readRefundStatus(parsed: Fields | Fields[], refId: string, merchantId: string): RefundStatusEntry {
  const entries = Array.isArray(parsed) ? parsed : [parsed];
  const entry = entries.find((fields) => fields.RefID === refId);
  if (!entry) throw new FiuuProtocolError("the refund status answer lists no refund with this RefID");
  if (entry.MerchantID !== undefined && entry.MerchantID !== merchantId)
    throw new FiuuProtocolError("the refund status answer is for another merchant");
  const status = normaliseRefundStatus(entry.Status ?? "");
  if (!status) throw new FiuuProtocolError(`the refund status answer has an unknown Status "${(entry.Status ?? "").slice(0, 20)}"`);
  return { refId, refundId: entry.RefundID ?? "", txnId: entry.TxnID ?? "", status, fields: entry };
}

export interface RefundRequest {
  refundType: string;
  merchantId: string;
  refId: string;
  txnId: string;
  amount: string;
}

const refundAnswerNames = ["RefundType", "MerchantID", "RefID", "RefundID", "TxnID", "Amount", "Status", "Signature"] as const;

/**
 * Checks a refund acceptance answer against its Signature (over the exact strings received, Status
 * as sent: "22" or "pending" alike) and against the request it answers. Throws FiuuProtocolError.
 */
export function readRefundAnswer(fields: Fields, sent: RefundRequest, secretKey: string): { refundId: string; status: RefundStatus } {
  for (const name of refundAnswerNames) {
    if (fields[name] === undefined) throw new FiuuProtocolError(`the refund answer lacks ${name}`);
  }
  const received = fields.Signature!;
  // A word Status ("pending") is signed as its code ("22"), FIUU.md §4.
  const expected = refundAnswerSignature({
    refundType: fields.RefundType!,
    merchantId: fields.MerchantID!,
    refId: fields.RefID!,
    refundId: fields.RefundID!,
    txnId: fields.TxnID!,
    amount: fields.Amount!,
    status: refundStatusCode(fields.Status!),
    secretKey,
  });
  if (!md5HexPattern.test(received) || !safeEqualHex(expected, received)) throw new FiuuProtocolError("the refund answer's Signature does not match");
  if (fields.MerchantID !== sent.merchantId) throw new FiuuProtocolError("the refund answer is for another merchant");
  if (fields.RefID !== sent.refId || fields.TxnID !== sent.txnId) throw new FiuuProtocolError("the refund answer is about another refund");
  const amount = parseFiuuAmount(fields.Amount!);
  if (amount === undefined || amount !== parseFiuuAmount(sent.amount)) throw new FiuuProtocolError("the refund answer names another amount");
  const status = normaliseRefundStatus(fields.Status!);
  if (!status) throw new FiuuProtocolError(`the refund answer has an unknown Status "${fields.Status!}"`);
  if (!fields.RefundID) throw new FiuuProtocolError("the refund answer has an empty RefundID");
  return { refundId: fields.RefundID, status };
}
