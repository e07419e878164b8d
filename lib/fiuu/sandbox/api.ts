import type { Context, Hono } from "hono";
import { parseFiuuAmount } from "../../money.js";
import {
  newRefundID,
  malaysiaTime,
  readParams,
  signedRefundFields,
  type RefundState,
  type SandboxRefund,
  type SandboxState,
  type SandboxTransaction,
} from "./state.js";
import { refundSignature, refundStatusSignature, requerySkey, safeEqualHex, verifySkey, vrfKey } from "../signatures.js";

// Fiuu's server APIs as the sandbox plays them. FIUU.md names only Q99 (throttled) and the PR0xx
// shape; the other codes below are the sandbox's own, chosen so each refusal has one clear meaning.
//
// Requery refusals name no StatCode and carry no VrfKey, so nobody can mistake them for a
// transaction's status:
//   Q01 a parameter is missing   Q02 domain is not this merchant   Q03 the request skey is wrong
//   Q99 more than one query per 5 seconds (only with enforceQueryRate)
// An unknown order or tranID (or one whose amount differs from the query's) is not a refusal: Fiuu
// knows of no such payment, so the answer is StatCode "11", ErrorCode "Q04", ErrorDesc "Transaction
// not found", signed with a VrfKey over the queried values, and a merchant may treat it as "unpaid".
//
// Refund errors, JSON { error_code, error_desc }:
//   PR001 a parameter is missing or malformed    PR002 MerchantID is not this merchant
//   PR003 the Signature is wrong                  PR004 no such TxnID (or RefID, on status queries)
//   PR005 the transaction is not a success        PR006 the amount exceeds what is left to refund
//   PR007 the RefID was used for another TxnID or Amount

const requeryWindowMs = 5_000;
const refundAmountPattern = /^(0|[1-9][0-9]*)\.[0-9]{2}$/;
const statNames = { "00": "captured", "11": "failed", "22": "pending" } as const;
const refundStatusCodes: Record<RefundState, string> = { pending: "22", processing: "22", success: "00", rejected: "11" };

/** Requery, IPN echo and refund APIs, each behind the fault switch, under /RMS/ and /MOLPay/. */
export function registerServerApis(app: Hono, state: SandboxState): void {
  const api = (handler: (c: Context) => Promise<Response>) => async (c: Context) => (await injectedFault(state)) ?? handler(c);
  for (const prefix of ["/RMS", "/MOLPay"]) {
    app.on(["GET", "POST"], `${prefix}/query/q_by_oid.php`, api((c) => requery(c, state, "order")));
    app.on(["GET", "POST"], [`${prefix}/API/gate-query/index.php`, `${prefix}/q_by_tid.php`], api((c) => requery(c, state, "tranID")));
    app.on(["GET", "POST"], `${prefix}/API/chkstat/returnipn.php`, api((c) => ipnEcho(c, state)));
    app.post(`${prefix}/API/refundAPI/index.php`, api((c) => refund(c, state)));
    app.on(["GET", "POST"], `${prefix}/API/refundAPI/q_by_refID.php`, api((c) => refundStatus(c, state, "RefID")));
    app.on(["GET", "POST"], `${prefix}/API/refundAPI/q_by_txn.php`, api((c) => refundStatus(c, state, "TxnID")));
  }
}

async function injectedFault(state: SandboxState): Promise<Response | undefined> {
  const { mode, delayMs } = state.fault;
  if (mode === "down") return new Response("Service Unavailable", { status: 503 });
  if (mode === "error") return new Response("Internal Server Error", { status: 500 });
  if (mode === "slow") await new Promise((resolve) => setTimeout(resolve, delayMs));
  return undefined;
}

function queryAnswer(c: Context, params: Record<string, string>, fields: Record<string, string>): Response {
  if (params.type === "2") return c.json(fields);
  return c.text(Object.entries(fields).map(([name, value]) => `${name}=${value}`).join("\n") + "\n");
}

async function requery(c: Context, state: SandboxState, by: "order" | "tranID"): Promise<Response> {
  const { merchantId, verifyKey, secretKey } = state.options;
  const params = await readParams(c);
  const refuse = (ErrorCode: string, ErrorDesc: string) => queryAnswer(c, params, { ErrorCode, ErrorDesc });

  if (state.options.enforceQueryRate) {
    const key = params.domain ?? "";
    const nowMs = state.now().getTime();
    const last = state.lastQueryAt.get(key);
    if (last !== undefined && nowMs - last < requeryWindowMs) return refuse("Q99", "Too many queries: at most one per 5 seconds per merchant");
    state.lastQueryAt.set(key, nowMs);
  }
  const idName = by === "order" ? "oID" : "txID";
  const { amount, domain, skey } = params;
  const id = params[idName];
  if (amount === undefined || domain === undefined || skey === undefined || id === undefined) {
    return refuse("Q01", `Missing parameter: amount, ${idName}, domain and skey are required`);
  }
  if (domain !== merchantId) return refuse("Q02", "Unknown merchant");
  if (!safeEqualHex(requerySkey({ id, domain, verifyKey, amount }), skey)) return refuse("Q03", "Invalid skey");

  const amountMinor = parseFiuuAmount(amount);
  const matches = (tx: SandboxTransaction) => tx.amountMinor === amountMinor && (by === "order" ? tx.orderid === id : tx.tranID === id);
  const tx = [...state.transactions.values()].reverse().find(matches);
  const extra = (fields: { OrderID: string; BillingDate: string; BillingName: string }) => (by === "order" ? fields : {});

  if (!tx) {
    return queryAnswer(c, params, {
      StatCode: "11",
      StatName: statNames["11"],
      TranID: by === "tranID" ? id : "",
      Amount: amount,
      Domain: merchantId,
      Channel: "",
      Currency: "",
      ErrorCode: "Q04",
      ErrorDesc: "Transaction not found",
      VrfKey: vrfKey({ amount, secretKey, domain: merchantId, id, statCode: "11" }),
      ...extra({ OrderID: id, BillingDate: "", BillingName: "" }),
    });
  }
  // A shopper still on the hosted page has not paid yet: Fiuu reports such a payment as pending.
  const statCode = tx.status === "awaiting" ? "22" : tx.status;
  return queryAnswer(c, params, {
    StatCode: statCode,
    StatName: statNames[statCode],
    TranID: tx.tranID,
    Amount: tx.amount,
    Domain: merchantId,
    Channel: tx.channel,
    Currency: tx.currency,
    ErrorCode: tx.errorCode ?? "",
    ErrorDesc: tx.errorDesc ?? "",
    VrfKey: vrfKey({ amount: tx.amount, secretKey, domain: merchantId, id: by === "order" ? tx.orderid : tx.tranID, statCode }),
    ...extra({ OrderID: tx.orderid, BillingDate: tx.createdAt, BillingName: tx.billName }),
  });
}

async function ipnEcho(c: Context, state: SandboxState): Promise<Response> {
  const fields = await readParams(c);
  const problems: string[] = [];
  if (fields.treq !== "1") problems.push("treq=1 is missing");
  if (!fields.tranID || !state.transactions.has(fields.tranID)) problems.push("unknown tranID");
  else if (!verifySkey(fields, state.options.secretKey)) problems.push("the fields no longer match their skey (changed on the way back?)");
  state.ipnEchoes.push({ at: state.now().toISOString(), fields, problems });
  return c.text("OK");
}

function refundError(c: Context, code: string, desc: string): Response {
  return c.json({ error_code: code, error_desc: desc });
}

function refundAnswer(c: Context, state: SandboxState, refund: SandboxRefund): Response {
  return c.json(signedRefundFields(state, refund, refundStatusCodes[refund.state]));
}

async function refund(c: Context, state: SandboxState): Promise<Response> {
  const { merchantId, secretKey } = state.options;
  const params = await readParams(c);
  const { RefundType, MerchantID, RefID, TxnID, Amount, Signature } = params;
  if (!RefundType || !MerchantID || !RefID || !TxnID || !Amount || !Signature) {
    return refundError(c, "PR001", "Missing parameter: RefundType, MerchantID, RefID, TxnID, Amount and Signature are required");
  }
  if (MerchantID !== merchantId) return refundError(c, "PR002", "Unknown merchant");
  const expected = refundSignature({ refundType: RefundType, merchantId: MerchantID, refId: RefID, txnId: TxnID, amount: Amount, secretKey });
  if (!safeEqualHex(expected, Signature)) return refundError(c, "PR003", "Invalid Signature");
  if (RefundType !== "P") return refundError(c, "PR001", "RefundType must be P");
  const amountMinor = refundAmountPattern.test(Amount) ? parseFiuuAmount(Amount) : undefined;
  if (!amountMinor) return refundError(c, "PR001", "Amount must be a positive amount with exactly 2 decimals");
  const notifyUrl = params.notify_url || undefined;
  if (notifyUrl && !/^https?:\/\//i.test(notifyUrl)) return refundError(c, "PR001", "notify_url must be an http or https URL");

  // From here on nothing awaits, so two requests at once cannot both pass the refundable check.
  const existing = state.refunds.get(RefID);
  if (existing) {
    // The same RefID again is a retry: the same refund, never a second one.
    if (existing.txnId === TxnID && existing.amountMinor === amountMinor) return refundAnswer(c, state, existing);
    return refundError(c, "PR007", "RefID already used for a different refund");
  }
  const tx = state.transactions.get(TxnID);
  if (!tx) return refundError(c, "PR004", "Transaction not found");
  if (tx.status !== "00") return refundError(c, "PR005", "Only a successful transaction can be refunded");
  const committed = [...state.refunds.values()]
    .filter((r) => r.txnId === TxnID && r.state !== "rejected")
    .reduce((sum, r) => sum + r.amountMinor, 0);
  if (amountMinor > tx.amountMinor - committed) return refundError(c, "PR006", "Amount exceeds the refundable amount");

  const at = malaysiaTime(state.now());
  const created: SandboxRefund = {
    refId: RefID,
    refundId: newRefundID(state),
    refundType: RefundType,
    txnId: TxnID,
    amount: Amount,
    amountMinor,
    ...(notifyUrl ? { notifyUrl } : {}),
    state: "pending",
    reason: "",
    createdAt: at,
    updatedAt: at,
  };
  state.refunds.set(RefID, created);
  return refundAnswer(c, state, created);
}

function refundStatusFields(state: SandboxState, refund: SandboxRefund) {
  return {
    RefundType: refund.refundType,
    MerchantID: state.options.merchantId,
    RefID: refund.refId,
    RefundID: refund.refundId,
    TxnID: refund.txnId,
    Amount: refund.amount,
    Status: refund.state,
    LastUpdate: refund.updatedAt,
    reason: refund.reason,
  };
}

async function refundStatus(c: Context, state: SandboxState, by: "RefID" | "TxnID"): Promise<Response> {
  const { merchantId, verifyKey } = state.options;
  const params = await readParams(c);
  const id = params[by];
  const { MerchantID, Signature } = params;
  if (!id || !MerchantID || !Signature) return refundError(c, "PR001", `Missing parameter: ${by}, MerchantID and Signature are required`);
  if (MerchantID !== merchantId) return refundError(c, "PR002", "Unknown merchant");
  if (!safeEqualHex(refundStatusSignature(id, MerchantID, verifyKey), Signature)) return refundError(c, "PR003", "Invalid Signature");
  if (by === "RefID") {
    const found = state.refunds.get(id);
    return found ? c.json(refundStatusFields(state, found)) : refundError(c, "PR004", "Refund not found");
  }
  if (!state.transactions.has(id)) return refundError(c, "PR004", "Transaction not found");
  return c.json([...state.refunds.values()].filter((r) => r.txnId === id).map((r) => refundStatusFields(state, r)));
}
