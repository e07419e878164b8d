// Fiuu's own codes and wording, as its merchant API specification (v13.86) writes them; the sandbox
// answers with nothing else. Page numbers are that PDF's.

/** Refund API errors, Appendix C (p.102–103), worded as the spec writes them. */
export const refundErrors = {
  PR001: "Refund Type not found.",
  PR002: "MerchantID field is mandatory.",
  PR003: "RefID field is mandatory.",
  PR004: "TxnID field is mandatory",
  PR005: "Amount field is mandatory.",
  PR006: "Signature field is mandatory",
  PR007: "Merchant ID not found.",
  PR008: "Invalid Signature.",
  PR009: "Txn ID not found.",
  PR010: "Transaction must be in authorized/captured/settled status. Current transaction is in {{TRANSACTION_STATUS}} status.",
  PR011: "Exceed refund amount for this transaction.",
  PR012: "Bank information is not applicable for credit channel transaction.",
  PR013: "BankCode not found in our database, please contact support.",
  PR014: "Bank information is mandatory for non-credit channel transaction.",
  PR015: "Server is busy, try again later.",
  PR016: "Duplicate RefID found, please provide a unique RefID.",
  PR017: "Refund request for transaction that is out of the allowed period.",
  PR018: "BeneficiaryName cannot contain non-alphanumeric characters.",
  PR019: "Refund is not allowed / Only partial refund is allowed / Only full refund is allowed.",
  PR020: "Insufficient balance to refund.",
} as const;

export type RefundErrorCode = keyof typeof refundErrors;

/** Refund status inquiry errors, Appendix C (p.103). INQ007–INQ010 are not in the spec. */
export const refundStatusErrors = {
  INQ001: "TxnID field is mandatory.",
  INQ002: "MerchantID field is mandatory.",
  INQ003: "Signature field is mandatory.",
  INQ004: "Merchant ID not found.",
  INQ005: "Invalid Signature.",
  INQ006: "Unable to find refund transaction.",
  INQ011: "RefID field is mandatory.",
} as const;

export type RefundStatusErrorCode = keyof typeof refundStatusErrors;

/**
 * Payment status query errors (p.136). The direct requery (gate-query) uses the 5-digit codes, the
 * indirect ones (q_by_tid, q_by_oid) the 2–3 digit codes. Where the spec gives one line to several
 * codes, each code gets that line; `{parameter_name}` is filled in by the caller.
 */
export const requeryErrors: Record<string, string> = {
  Q01: "Missing Required Parameter ({parameter_name}).",
  Q00001: "Missing Required Parameter ({parameter_name}).",
  Q02: "Invalid Parameter Value ({parameter_name}).",
  Q00002: "Invalid Parameter Value ({parameter_name}).",
  Q03: "System is busy now, temporary out of services. Please try again later.",
  Q00007: "System is busy now, temporary out of services. Please try again later.",
  Q04: "Merchant info not found.",
  Q00003: "Merchant info not found.",
  Q05: "Send result to merchant URL failed.",
  Q06: "Query period expired. No result available for transaction more than 7 days.",
  Q07: "Exceeded the maximum limit of tIDs or oIDs of 10.",
  Q00008: "Error encountered due to external service disruption. Kindly retry.",
  Q99: "Service blocked due to massive connection. Please send only 1 request every 5 minutes.",
  Q101: "Correct skey with invalid data",
  Q201: "Correct skey with invalid data",
  Q00004: "Incorrect skey",
  Q102: "Incorrect skey",
  Q202: "Incorrect skey",
  Q302: "Incorrect skey",
  Q402: "Incorrect skey",
  Q502: "Incorrect skey",
  Q203: "Transaction record not found",
  Q303: "Transaction record not found",
  Q00005: "Transaction record not found",
  Q204: "Incorrect amount",
  Q401: "Delimiter error",
};

/** The requery endpoints, each with its family of codes. */
export type RequeryEndpoint = "gate-query" | "q_by_tid" | "q_by_oid";

/**
 * Which code each endpoint answers for each refusal. The spec groups the codes by API (5 digits
 * for the direct requery; Q1xx, Q2xx, Q3xx, Q4xx, Q5xx following the order of the indirect APIs:
 * q_by_tid, q_by_oid, q_oid_batch, q_by_oids (Q401 delimiter error: the only one with a
 * delimiter), q_by_tids). It lists no "not found" or "incorrect amount" code for q_by_tid, so
 * that endpoint answers Q203 and Q204, the indirect requery's codes for them.
 */
export const requeryCodes: Record<
  RequeryEndpoint,
  { missing: string; invalid: string; merchant: string; skey: string; notFound: string; amount: string; busy: string }
> = {
  "gate-query": { missing: "Q00001", invalid: "Q00002", merchant: "Q00003", skey: "Q00004", notFound: "Q00005", amount: "Q00004", busy: "Q00007" },
  q_by_tid: { missing: "Q01", invalid: "Q02", merchant: "Q04", skey: "Q102", notFound: "Q203", amount: "Q204", busy: "Q03" },
  q_by_oid: { missing: "Q01", invalid: "Q02", merchant: "Q04", skey: "Q202", notFound: "Q203", amount: "Q204", busy: "Q03" },
};

/** The spec's description of a requery code, with the parameter named (or the placeholder dropped). */
export function requeryErrorDesc(code: string, parameter = ""): string | undefined {
  return requeryErrors[code]?.replace(parameter ? "{parameter_name}" : " ({parameter_name})", parameter);
}

/** Hosted payment page errors (p.131–132) the sandbox shows. */
export const pageErrors = {
  P03: "Your payment info format not correct ! Incorrect security hash string, check “vcode”.",
  P04: "not allow to process. Incomplete buyer information, check bill_name, bill_mobile, bill_email, orderid, faked mobile such as 0123456789 will be blocked as well",
  P09: "Duplicate payment is not allowed for this merchant. Payment with same order ID and amount is not allowed to capture twice.",
  P13: "Currency not supported.",
  P19: "Invalid Order ID",
} as const;

/**
 * Malaysian bank codes a refund's BankCode may name. The spec refers to its "predefined bank list",
 * which moved to the Mass Payout API document (changelog v13.12) and is not public; these are the
 * FPX (PayNet) participant codes of the Malaysian retail banks, the ones Fiuu's FPX channels map to.
 */
export const bankCodes = new Set([
  "ABB0233", // Affin Bank
  "ABMB0212", // Alliance Bank
  "AGRO01", // AGRONet
  "AMBB0209", // AmBank
  "BCBB0235", // CIMB Bank
  "BIMB0340", // Bank Islam
  "BKRM0602", // Bank Rakyat
  "BMMB0341", // Bank Muamalat
  "BOCM01", // Bank of China
  "BSN0601", // BSN
  "HLB0224", // Hong Leong Bank
  "HSBC0223", // HSBC Bank
  "KFH0346", // Kuwait Finance House
  "MB2U0227", // Maybank2u
  "MBB0228", // Maybank2E
  "OCBC0229", // OCBC Bank
  "PBB0233", // Public Bank
  "RHB0218", // RHB Bank
  "SCB0216", // Standard Chartered
  "UOB0226", // UOB
]);

/** Whether a reported channel name is a card payment (Fiuu's `credit` family). */
export function isCardChannel(channel: string): boolean {
  return /^credit/i.test(channel) || /^(visa|mastercard|amex|unionpay|CIMB-VISA|CIMB-MASTERCARD)$/i.test(channel);
}

/**
 * Whether a mobile number is one Fiuu refuses as made up (P04: "faked mobile such as 0123456789").
 * The sandbox's rule: fewer than 7 digits, one digit repeated, or a run of 123456789 / 987654321.
 */
export function isFakeMobile(mobile: string): boolean {
  const digits = mobile.replace(/[\s()+\-.]/g, "");
  if (!/^[0-9]+$/.test(digits)) return false;
  if (digits.length < 7) return true;
  if (/^(\d)\1+$/.test(digits)) return true;
  return digits.includes("123456789") || digits.includes("987654321");
}
