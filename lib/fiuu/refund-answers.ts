import { parseFiuuAmount } from "../money.js";
import { FiuuProtocolError } from "./client-errors.js";
import { refundAnswerSignature, safeEqualHex } from "./signatures.js";

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
  const expected = refundAnswerSignature({
    refundType: fields.RefundType!,
    merchantId: fields.MerchantID!,
    refId: fields.RefID!,
    refundId: fields.RefundID!,
    txnId: fields.TxnID!,
    amount: fields.Amount!,
    status: fields.Status!,
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
