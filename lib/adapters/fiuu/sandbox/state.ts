import { randomInt } from "node:crypto";
import type { Context } from "hono";
import { refundAnswerSignature, skey, type SkeyFields } from "../signatures.js";

/** How the sandbox is configured: the merchant it plays Fiuu for and how it reaches that merchant. */
export interface FiuuSandboxOptions {
  merchantId: string;
  verifyKey: string;
  secretKey: string;
  /** Fiuu's "extended vcode" option for this merchant: the currency is part of the vcode. */
  extendedVcode?: boolean;
  /** The merchant's notification URL as registered in Fiuu's portal (nbcb=2 goes here). */
  notifyUrl: string;
  /** The merchant's return URL as registered in the portal, used when a payment form sends no returnurl. */
  returnUrl?: string;
  /** How the sandbox reaches the merchant server-to-server; default globalThis.fetch. */
  fetch?: (request: Request) => Promise<Response>;
  now?: () => Date;
  /**
   * Fiuu's query window: a requery (any of the three endpoints) from the same merchant sooner than
   * this after the last one it answered gets Q99. Default 5000 ms, Fiuu's "1 query every 5
   * seconds"; 0 turns it off.
   */
  queryWindowMs?: number;
  /** `false` turns the Q99 window off (same as queryWindowMs: 0); on unless said otherwise. */
  enforceQueryRate?: boolean;
  /**
   * How a type=2 (JSON) requery answer writes `Amount`: as a JSON number with its two decimals
   * (`"Amount":30.00`, as the spec's q_by_oids example), the default; or as a string
   * (`"Amount":"30.00"`, as its gate-query and q_by_tid examples).
   */
  requeryJsonAmount?: "number" | "string";
  /**
   * How q_by_oid answers an order it has no record of: `error` (default) the ErrorCode Q203 alone;
   * `dashes` a record of "-" values with the queried OrderID, as the spec's q_by_oids example.
   */
  requeryNotFound?: "error" | "dashes";
  /** How long a server-to-server delivery may take before it counts as failed; default 5000 ms. */
  deliveryTimeoutMs?: number;
}

/** Where a transaction stands: `awaiting` until the shopper presses a button on the hosted page. */
export type TransactionStatus = "awaiting" | "00" | "11" | "22";

export interface SandboxTransaction {
  tranID: string;
  orderid: string;
  /** Exactly the string the payment form sent; every report and signature uses it unchanged. */
  amount: string;
  amountMinor: number;
  currency: string;
  /** The request code the form sent (`FPX_MB2U`), or "" when the shopper chooses. */
  requestedChannel: string;
  billName: string;
  billEmail: string;
  billMobile: string;
  /** The form sent guest_checkout=1 (mpsguest_checkout=1 when seamless). */
  guestCheckout: boolean;
  /** The form came from Fiuu's seamless script (mps* fields, signed by mpsvcode). */
  seamless: boolean;
  billDesc: string;
  country: string;
  langcode: string;
  returnUrl?: string;
  callbackUrl?: string;
  cancelUrl?: string;
  /** Malaysia time, as BillingDate. */
  createdAt: string;
  /** The same instant in ms since the epoch (the 180-day refund period counts from it). */
  createdAtMs: number;
  status: TransactionStatus;
  appcode: string;
  paydate: string;
  /** The channel name reported back, which is not always the request code. */
  channel: string;
  errorCode?: string;
  errorDesc?: string;
}

export type RefundState = "pending" | "processing" | "success" | "rejected";

export interface SandboxRefund {
  refId: string;
  refundId: string;
  refundType: string;
  txnId: string;
  /** Exactly the string the refund request sent. */
  amount: string;
  amountMinor: number;
  notifyUrl?: string;
  /** The beneficiary fields as the request sent them (non-card refunds only). */
  bank?: { bankCode: string; bankCountry: string; beneficiaryName: string; beneficiaryAccNo: string };
  state: RefundState;
  reason: string;
  fpxTxnId: string;
  createdAt: string;
  updatedAt: string;
}

export interface DeliveryRecord {
  kind: "notification" | "callback" | "refund_notice";
  url: string;
  fields: Record<string, string>;
  /** How the body was sent: form-encoded (reports) or JSON (refund notices, unless told otherwise). */
  encoding: "form" | "json";
  /** The body exactly as sent. */
  payload: string;
  at: string;
  status?: number;
  body?: string;
  error?: string;
}

export interface IpnEchoRecord {
  at: string;
  fields: Record<string, string>;
  /** Why the echo is not what Fiuu expects (no treq=1, unknown tranID, fields changed); empty when fine. */
  problems: string[];
}

export type FaultMode = "none" | "down" | "slow" | "error";

/** The server APIs, as the controls name them. */
export type Operation = "refund" | "refund_status" | "requery" | "echo";

/**
 * What happens to the next matching requests: `lose_answer` processes the request, then answers
 * HTTP 504 with no body; `drop` answers 504 without processing; `error_code` answers the given
 * Fiuu error code in the operation's error format without processing.
 */
export interface NextEffect {
  id: number;
  operation: Operation | "any";
  effect: "lose_answer" | "drop" | "error_code";
  /** How many more requests it applies to. */
  remaining: number;
  code?: string;
  desc?: string;
}

/** A request one of the server APIs received, and what became of it. */
export interface RequestRecord {
  operation: Operation;
  method: string;
  path: string;
  /** Query string and form fields, as received. */
  fields: Record<string, string>;
  /** The `idempotency-key` request header (or the spec's other spelling, `idempotence-key`); null when absent. */
  idempotencyKey: string | null;
  at: string;
  /**
   * `answered` normally; `answer_lost` processed but answered 504; `dropped` not processed (504);
   * `error_code` answered an injected code; `down` / `error` refused by the fault switch.
   */
  outcome: "answered" | "answer_lost" | "dropped" | "error_code" | "down" | "error";
  /** The HTTP status and body of what the sandbox answered. */
  status?: number;
  answer?: string;
}

/** Everything one sandbox instance knows; nothing lives at module level. */
export interface SandboxState {
  options: FiuuSandboxOptions;
  now: () => Date;
  transactions: Map<string, SandboxTransaction>;
  refunds: Map<string, SandboxRefund>;
  deliveries: DeliveryRecord[];
  ipnEchoes: IpnEchoRecord[];
  fault: { mode: FaultMode; delayMs: number };
  /** Per-operation effects for the next requests, applied in the order they were set. */
  next: NextEffect[];
  nextId: number;
  requests: RequestRecord[];
  lastQueryAt: Map<string, number>;
}

/** A fresh, empty state for one sandbox instance. */
export function createSandboxState(options: FiuuSandboxOptions): SandboxState {
  return {
    options,
    now: options.now ?? (() => new Date()),
    transactions: new Map(),
    refunds: new Map(),
    deliveries: [],
    ipnEchoes: [],
    fault: { mode: "none", delayMs: 0 },
    next: [],
    nextId: 1,
    requests: [],
    lastQueryAt: new Map(),
  };
}

/** A string of random digits, not starting with 0 (so it survives being read as a number). */
export function randomDigits(length: number): string {
  let digits = String(randomInt(1, 10));
  while (digits.length < length) digits += String(randomInt(0, 10));
  return digits;
}

/** A new tranID, 10–12 digits, unique within the instance. */
export function newTranID(state: SandboxState): string {
  for (;;) {
    const id = randomDigits(randomInt(10, 13));
    if (!state.transactions.has(id)) return id;
  }
}

/** A new RefundID, unique within the instance. */
export function newRefundID(state: SandboxState): string {
  const taken = new Set([...state.refunds.values()].map((refund) => refund.refundId));
  for (;;) {
    const id = randomDigits(8);
    if (!taken.has(id)) return id;
  }
}

/** `YYYY-MM-DD HH:mm:ss` in Malaysia time (UTC+8, no daylight saving), as Fiuu writes paydate. */
export function malaysiaTime(date: Date): string {
  return new Date(date.getTime() + 8 * 3_600_000).toISOString().slice(0, 19).replace("T", " ");
}

// Fiuu reports a bank's name rather than the FPX request code for some channels; the rest are
// reported as requested.
const reportedChannelNames: Record<string, string> = {
  FPX_MB2U: "maybank2u",
  FPX_CIMBCLICKS: "cimbclicks",
  FPX_PBB: "publicbank",
  FPX_HLB: "hlb",
  FPX_RHB: "rhb",
  FPX_AMB: "amb",
  FPX_BIMB: "bankislam",
  fpx: "fpx",
  credit: "credit",
  "TNG-EWALLET": "TNG-EWALLET",
  "MB2U_QRPay-Push": "MB2U_QRPay-Push",
};

/** The channel name a report carries for a request code; "credit" when the shopper chose. */
export function reportedChannel(requested: string): string {
  if (!requested) return "credit";
  const known = reportedChannelNames[requested];
  if (known) return known;
  if (/^FPX_/i.test(requested)) return requested.replace(/^FPX_(B2B_)?/i, "").toLowerCase();
  return requested;
}

/** The report fields of §2 for a transaction, signed; no nbcb (the caller adds it per route). */
export function reportFields(state: SandboxState, tx: SandboxTransaction): Record<string, string> {
  const { merchantId, secretKey } = state.options;
  const covered: SkeyFields = {
    tranID: tx.tranID,
    orderid: tx.orderid,
    status: tx.status === "awaiting" ? "22" : tx.status,
    domain: merchantId,
    amount: tx.amount,
    currency: tx.currency,
    paydate: tx.paydate,
    appcode: tx.appcode,
  };
  return {
    ...covered,
    channel: tx.channel,
    ...(tx.errorCode !== undefined ? { error_code: tx.errorCode, error_desc: tx.errorDesc ?? "" } : {}),
    skey: skey(covered, secretKey),
  };
}

/**
 * POSTs form fields (or, given `json`, that JSON text) to a merchant URL server-to-server and records the attempt with its answer.
 * Never throws: a refused connection, a timeout or an error status is what gets recorded.
 */
export async function deliver(
  state: SandboxState,
  kind: DeliveryRecord["kind"],
  url: string,
  fields: Record<string, string>,
  json?: string,
): Promise<DeliveryRecord> {
  const encoding = json === undefined ? "form" : "json";
  const payload = json ?? new URLSearchParams(fields).toString();
  const record: DeliveryRecord = { kind, url, fields, encoding, payload, at: state.now().toISOString() };
  state.deliveries.push(record);
  const timeoutMs = state.options.deliveryTimeoutMs ?? 5_000;
  const send = state.options.fetch ?? ((request: Request) => globalThis.fetch(request));
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  // The race matters besides the abort signal: an injected fetch (a Hono app in tests) may ignore it.
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    const request = new Request(url, {
      method: "POST",
      headers: { "content-type": encoding === "json" ? "application/json" : "application/x-www-form-urlencoded" },
      body: payload,
      signal: controller.signal,
    });
    const answer = await Promise.race([send(request).then(async (response) => ({ status: response.status, body: await response.text() })), timeout]);
    record.status = answer.status;
    record.body = answer.body;
  } catch (error) {
    record.error = error instanceof Error ? error.message : String(error);
  } finally {
    clearTimeout(timer);
  }
  return record;
}

/** Reads a request's parameters from the query string and, for a form POST, the body (body wins). */
export async function readParams(c: Context): Promise<Record<string, string>> {
  const params: Record<string, string> = { ...c.req.query() };
  if (c.req.method === "POST") {
    const type = c.req.header("content-type") ?? "";
    if (type.includes("application/x-www-form-urlencoded") || type.includes("multipart/form-data")) {
      const body = await c.req.parseBody();
      for (const [name, value] of Object.entries(body)) if (typeof value === "string") params[name] = value;
    }
  }
  return params;
}

/** Gives a transaction an outcome as Fiuu would report it: paydate now, appcode only on success. */
export function applyOutcome(state: SandboxState, tx: SandboxTransaction, status: "00" | "11" | "22"): void {
  tx.status = status;
  tx.paydate = malaysiaTime(state.now());
  tx.appcode = status === "00" ? randomDigits(6) : "";
  tx.channel = reportedChannel(tx.requestedChannel);
  if (status === "11") {
    tx.errorCode = "SB_DECLINED";
    tx.errorDesc = "Declined on the Fiuu sandbox";
  } else {
    delete tx.errorCode;
    delete tx.errorDesc;
  }
}

/**
 * Reports a transaction server-to-server as Fiuu does: the notification (nbcb=2) to the URL in the
 * portal and, when the form gave one, the callback (nbcb=1); both at once, both awaited.
 */
export async function sendReports(state: SandboxState, tx: SandboxTransaction): Promise<DeliveryRecord[]> {
  const fields = reportFields(state, tx);
  const sends = [deliver(state, "notification", state.options.notifyUrl, { ...fields, nbcb: "2" })];
  if (tx.callbackUrl) sends.push(deliver(state, "callback", tx.callbackUrl, { ...fields, nbcb: "1" }));
  return Promise.all(sends);
}

/** A JSON value written exactly as given: `{ raw: "30.00" }` is the bare number 30.00. */
export type JsonText = string | null | { raw: string };

/**
 * A flat JSON object written by hand, so that numbers keep their text (`"Amount":30.00`, which
 * JSON.stringify would write as 30).
 */
export function jsonObject(fields: Record<string, JsonText>): string {
  const members = Object.entries(fields).map(([name, value]) => {
    const text = value === null ? "null" : typeof value === "string" ? JSON.stringify(value) : value.raw;
    return `${JSON.stringify(name)}:${text}`;
  });
  return `{${members.join(",")}}`;
}

/** A digit string as a bare JSON number when it is one (no leading zero), else as a string. */
export function jsonDigits(text: string): JsonText {
  return /^(0|[1-9][0-9]*)$/.test(text) ? { raw: text } : text;
}

/**
 * A refund's fields as Fiuu signs them (refund answer and refund notice): the Signature is over
 * `status`, the code; `shownStatus` is what the Status field says (the code unless told otherwise).
 */
export function signedRefundFields(state: SandboxState, refund: SandboxRefund, status: string, shownStatus = status): Record<string, string> {
  const { merchantId, secretKey } = state.options;
  const Signature = refundAnswerSignature({
    refundType: refund.refundType,
    merchantId,
    refId: refund.refId,
    refundId: refund.refundId,
    txnId: refund.txnId,
    amount: refund.amount,
    status,
    secretKey,
  });
  return {
    RefundType: refund.refundType,
    MerchantID: merchantId,
    RefID: refund.refId,
    RefundID: refund.refundId,
    TxnID: refund.txnId,
    Amount: refund.amount,
    Status: shownStatus,
    Signature,
    reason: refund.reason,
    FPXTxnID: refund.fpxTxnId,
  };
}

/** The refund fields as Fiuu's JSON writes them: RefundID and TxnID as JSON numbers. */
export function refundJson(fields: Record<string, string>): string {
  const out: Record<string, JsonText> = {};
  for (const [name, value] of Object.entries(fields)) out[name] = name === "RefundID" || name === "TxnID" ? jsonDigits(value) : value;
  return jsonObject(out);
}
