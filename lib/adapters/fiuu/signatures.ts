import { createHash, timingSafeEqual } from "node:crypto";

// Every Fiuu signature is a lowercase hex MD5 of plain concatenated strings (FIUU.md). Callers pass
// the exact strings sent or received; nothing here formats or normalises a value, because a
// reformatted amount ("10.0" for "10.00") is a different message.

const md5 = (text: string): string => createHash("md5").update(text, "utf8").digest("hex");

const md5HexPattern = /^[0-9a-f]{32}$/;

/** Compares two lowercase hex strings in constant time; false when either is not hex or lengths differ. */
export function safeEqualHex(a: string, b: string): boolean {
  if (typeof a !== "string" || typeof b !== "string") return false;
  if (a.length !== b.length || !/^[0-9a-f]+$/.test(a) || !/^[0-9a-f]+$/.test(b)) return false;
  return timingSafeEqual(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

export interface VcodeInput {
  amount: string;
  merchantId: string;
  orderId: string;
  verifyKey: string;
  currency?: string;
  /** Fiuu's "extended vcode" option for the merchant: the currency is hashed too. */
  extended?: boolean;
}

/** The payment request signature: md5(amount + merchantID + orderid + verifyKey [+ currency]). */
export function vcode({ amount, merchantId, orderId, verifyKey, currency, extended }: VcodeInput): string {
  if (extended && currency === undefined) throw new TypeError("extended vcode needs the currency");
  return md5(amount + merchantId + orderId + verifyKey + (extended ? currency : ""));
}

/** The fields of a return, notification or callback that the skey covers. */
export interface SkeyFields {
  tranID: string;
  orderid: string;
  status: string;
  domain: string;
  amount: string;
  currency: string;
  paydate: string;
  appcode: string;
}

export const skeyFieldNames = ["tranID", "orderid", "status", "domain", "amount", "currency", "paydate", "appcode"] as const;

/** The inner hash of a report: md5(tranID + orderid + status + domain + amount + currency). */
export function key0(fields: Omit<SkeyFields, "paydate" | "appcode">): string {
  return md5(fields.tranID + fields.orderid + fields.status + fields.domain + fields.amount + fields.currency);
}

/** The signature of a report Fiuu sends: md5(paydate + domain + key0 + appcode + secretKey). */
export function skey(fields: SkeyFields, secretKey: string): string {
  return md5(fields.paydate + fields.domain + key0(fields) + fields.appcode + secretKey);
}

/**
 * Whether a received report carries a valid skey. False when a covered field or the skey is missing,
 * or the skey is not 32 lowercase hex digits (Fiuu sends md5() output, which is lowercase).
 */
export function verifySkey(fields: Record<string, string | undefined>, secretKey: string): boolean {
  const received = fields.skey;
  if (typeof received !== "string" || !md5HexPattern.test(received)) return false;
  const covered: Partial<Record<keyof SkeyFields, string>> = {};
  for (const name of skeyFieldNames) {
    const value = fields[name];
    if (typeof value !== "string") return false;
    covered[name] = value;
  }
  return safeEqualHex(skey(covered as SkeyFields, secretKey), received);
}

export interface RequerySkeyInput {
  /** `txID` for gate-query and q_by_tid, `oID` for q_by_oid. */
  id: string;
  domain: string;
  verifyKey: string;
  amount: string;
}

/** The request signature of the status requery APIs: md5(txID|oID + domain + verifyKey + amount). */
export function requerySkey({ id, domain, verifyKey, amount }: RequerySkeyInput): string {
  return md5(id + domain + verifyKey + amount);
}

export interface VrfKeyInput {
  amount: string;
  secretKey: string;
  domain: string;
  /** TranID when queried by transaction, OrderID when queried by order. */
  id: string;
  statCode: string;
}

/** The signature of a requery answer: md5(Amount + secretKey + Domain + TranID|OrderID + StatCode). */
export function vrfKey({ amount, secretKey, domain, id, statCode }: VrfKeyInput): string {
  return md5(amount + secretKey + domain + id + statCode);
}

export interface RefundSignatureInput {
  refundType: string;
  merchantId: string;
  refId: string;
  txnId: string;
  amount: string;
  secretKey: string;
}

/** The refund request signature: md5(RefundType + MerchantID + RefID + TxnID + Amount + secretKey). */
export function refundSignature({ refundType, merchantId, refId, txnId, amount, secretKey }: RefundSignatureInput): string {
  return md5(refundType + merchantId + refId + txnId + amount + secretKey);
}

export interface RefundAnswerSignatureInput extends RefundSignatureInput {
  refundId: string;
  status: string;
}

/** The refund answer signature: md5(RefundType + MerchantID + RefID + RefundID + TxnID + Amount + Status + secretKey). */
export function refundAnswerSignature(input: RefundAnswerSignatureInput): string {
  const { refundType, merchantId, refId, refundId, txnId, amount, status, secretKey } = input;
  return md5(refundType + merchantId + refId + refundId + txnId + amount + status + secretKey);
}

/** The refund status query signature: md5(RefID|TxnID + MerchantID + verifyKey). */
export function refundStatusSignature(id: string, merchantId: string, verifyKey: string): string {
  return md5(id + merchantId + verifyKey);
}

const refundStatusCodes: Record<string, string> = { pending: "22", processing: "22", success: "00", rejected: "11" };

/**
 * A refund Status as the code Fiuu signs: a word (`pending`, `success`, …) becomes its code, a code
 * stays as it is. One recorded answer carried `"Status":"pending"` with a Signature over `22`.
 */
export function refundStatusCode(status: string): string {
  return refundStatusCodes[status.toLowerCase()] ?? status;
}

/**
 * Whether a refund notice (Fiuu's POST to the refund's notify_url) carries a valid Signature,
 * computed like the refund answer's over the fields received, the Status as its code, for this merchant.
 */
export function verifyRefundNotice(fields: Record<string, string | undefined>, merchantId: string, secretKey: string): boolean {
  const expected = refundAnswerSignature({
    refundType: fields.RefundType ?? "",
    merchantId: fields.MerchantID ?? "",
    refId: fields.RefID ?? "",
    refundId: fields.RefundID ?? "",
    txnId: fields.TxnID ?? "",
    amount: fields.Amount ?? "",
    status: refundStatusCode(fields.Status ?? ""),
    secretKey,
  });
  return safeEqualHex(expected, fields.Signature ?? "") && fields.MerchantID === merchantId;
}
