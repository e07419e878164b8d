// Fiuu's channel names (FIUU.md §5): the request codes a payment form sends, and the names its
// reports carry, which are not always the same (`maybank2u` for `FPX_MB2U`). A report's `channel`
// is unsigned, so it is only ever a label: anything not listed here is "other".

/** Request codes of card payments. */
const cardCodes = new Set([
  "credit",
  "credit3",
  "credit5",
  "credit7",
  "creditAN",
  "CIMB-VISA",
  "CIMB-MASTERCARD",
  "visa",
  "mastercard",
  "amex",
  "unionpay",
]);

/** Request codes of FIUU.md §5 (Malaysia and the other markets it names). */
const requestCodes = new Set([
  ...cardCodes,
  "fpx",
  "FPX_MB2U",
  "FPX_CIMBCLICKS",
  "FPX_PBB",
  "FPX_HLB",
  "FPX_RHB",
  "FPX_AMB",
  "FPX_BIMB",
  "FPX_OCBC",
  "FPX_SCB",
  "FPX_ABB",
  "FPX_BKRM",
  "FPX_BMMB",
  "FPX_KFH",
  "FPX_BSN",
  "FPX_ABMB",
  "FPX_UOB",
  "FPX_HSBC",
  "FPX_AGROBANK",
  "FPX_BOCM",
  "FPX_B2B_AMB",
  "FPX_B2B_HLB",
  "FPX_B2B_UOB",
  "FPX_B2B_ABB",
  "FPX_B2B_CIMB",
  "FPX_B2B_BIMB",
  "FPX_B2B_PBB",
  "FPX_B2B_RHB",
  "FPX_B2B_HSBC",
  "FPX_M2E",
  "FPX_B2B_BKRM",
  "FPX_B2B_AGROBANK",
  "TNG-EWALLET",
  "BOOST",
  "GrabPay",
  "ShopeePay",
  "MB2U_QRPay-Push",
  "ShopBack",
  "RPP_DuitNowQR",
  "cash",
  "jompay",
  "cash99",
  "Atome",
  "PayNow",
  "GrabPay_SG",
  "GCash",
  "QRPH",
  "alipay",
  "WeChatPay",
]);

/** Names Fiuu's reports carry that are not request codes (spec p.60, and bank names for FPX). */
const reportedNames = new Set([
  "maybank2u",
  "cimb",
  "cimbclicks",
  "publicbank",
  "hlb",
  "rhb",
  "amb",
  "bankislam",
  "ocbc",
  "scb",
  "abb",
  "bkrm",
  "bmmb",
  "kfh",
  "bsn",
  "abmb",
  "uob",
  "hsbc",
  "agrobank",
  "bocm",
]);

/** Whether a name is a channel Fiuu lists, as a request code or as a reported name. */
export function isKnownChannel(name: string): boolean {
  return requestCodes.has(name) || reportedNames.has(name);
}

/** The channel as a metric label: a listed code or reported name, otherwise "other" (never free text). */
export function channelLabel(name: string | null | undefined): string {
  if (!name) return "any";
  return isKnownChannel(name) ? name : "other";
}

/**
 * Whether a payment through this channel was by card (true), by another method (false), or the
 * channel says too little to tell (undefined). Fiuu refunds a non-card payment only to a bank
 * account it is given (PR014), and refuses one for a card payment (PR012).
 */
export function isCardChannel(name: string | null | undefined): boolean | undefined {
  if (!name) return undefined;
  if (cardCodes.has(name)) return true;
  return isKnownChannel(name) ? false : undefined;
}
