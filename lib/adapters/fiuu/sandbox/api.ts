import type { Context, Hono } from "hono";
import { parseFiuuAmount, toFiuuAmount } from "../../../core/money.js";
import {
  bankCodes,
  isCardChannel,
  refundErrors,
  refundStatusErrors,
  requeryCodes,
  requeryErrorDesc,
  type RefundErrorCode,
  type RefundStatusErrorCode,
  type RequeryEndpoint,
} from "./codes.js";
import {
  jsonObject,
  malaysiaTime,
  newRefundID,
  readParams,
  refundJson,
  reportedChannel,
  signedRefundFields,
  type JsonText,
  type NextEffect,
  type Operation,
  type RefundState,
  type RequestRecord,
  type SandboxRefund,
  type SandboxState,
} from "./state.js";
import { refundSignature, refundStatusSignature, requerySkey, safeEqualHex, verifySkey, vrfKey } from "../signatures.js";

// Fiuu's server APIs as the sandbox plays them, with Fiuu's own codes and wording (codes.ts, from
// the merchant API spec v13.86 and FIUU.md).
//
// Requery (gate-query = direct, 5-digit codes; q_by_tid and q_by_oid = indirect, 2–3 digit codes):
//   type=0 (default) plain text, one field a line: `Key=Value` (gate-query) or `Key: Value`
//   (q_by_tid, q_by_oid). type=2 JSON, Amount a JSON number with two decimals ("Amount":30.00),
//   empty ErrorCode/ErrorDesc as null. type=1 ("POST the result to url") is answered like type=0;
//   any other type is Q02/Q00002. Amount always has two decimals (asked for 3899, answers 3899.00).
//   Fields, in order: gate-query StatCode, StatName, TranID, Amount, Domain, Channel, VrfKey,
//   Currency, ErrorCode, ErrorDesc; q_by_tid StatCode, StatName, TranID, Amount, Domain, VrfKey,
//   Channel, OrderID, Currency, ErrorCode, ErrorDesc;
//   q_by_oid StatCode, StatName, OrderID, Amount, TranID, Domain, BillingDate, BillingName, VrfKey,
//   Channel, Currency, ErrorCode, ErrorDesc. VrfKey = md5(Amount + secretKey + Domain +
//   TranID|OrderID + StatCode).
//   A refusal carries ErrorCode and ErrorDesc only (no StatCode, no VrfKey), in the same format:
//                         gate-query   q_by_tid   q_by_oid
//     missing parameter   Q00001       Q01        Q01
//     invalid value       Q00002       Q02        Q02       (amount not a number, type)
//     merchant not found  Q00003       Q04        Q04
//     incorrect skey      Q00004       Q102       Q202
//     record not found    Q00005       Q203       Q203      (or dashes on q_by_oid, option)
//     incorrect amount    Q00004       Q204       Q204      (the id exists, with another amount)
//     too many queries    Q99          Q99        Q99       (within queryWindowMs, per merchant)
//
// Refund (index.php), JSON. Errors { error_code, error_desc }, HTTP 200, checked in this order:
//   PR001–PR006 the first missing of RefundType (or not P), MerchantID, RefID, TxnID, Amount,
//   Signature; PR007 MerchantID; PR008 Signature; PR016 any RefID used before; PR005 an Amount
//   that is not a positive 2-decimal amount; PR009 TxnID; PR010 not captured (status 00);
//   PR017 more than 180 days old; PR012 bank fields on a card payment; PR014 BankCode,
//   BeneficiaryName or BeneficiaryAccNo missing on a non-card payment; PR013 BankCode unknown
//   (or BankCountry not MY); PR018 BeneficiaryName not letters, digits and spaces; PR011 more
//   than what is left to refund. PR015, PR019, PR020 only by control (error_code).
//   Success: RefundType, MerchantID, RefID, RefundID (number), TxnID (number), Amount, Status "22",
//   Signature = md5(RefundType + MerchantID + RefID + RefundID + TxnID + Amount + Status +
//   secretKey), reason, FPXTxnID.
//
// Refund status (q_by_refID.php, q_by_txn.php), JSON array of { TxnID, RefID, RefundID, Status
//   (pending | processing | rejected | success), LastUpdate, FPXTxnID }, unsigned. Errors
//   { error_code, error_desc }: INQ011 RefID / INQ001 TxnID missing, INQ002 MerchantID missing,
//   INQ003 Signature missing, INQ004 merchant not found, INQ005 wrong Signature, INQ006 not found.

const refundPeriodMs = 180 * 24 * 3_600_000;
const refundAmountPattern = /^(0|[1-9][0-9]*)\.[0-9]{2}$/;
const statNames = { "00": "captured", "11": "failed", "22": "pending" } as const;
const refundStatusCodes: Record<RefundState, string> = { pending: "22", processing: "22", success: "00", rejected: "11" };
const transactionStatusWords = { awaiting: "pending", "00": "captured", "11": "failed", "22": "pending" } as const;

type Handler = (c: Context, params: Record<string, string>) => Response | Promise<Response>;

/** Requery, IPN echo and refund APIs, each behind the fault switch, under /RMS/ and /MOLPay/. */
export function registerServerApis(app: Hono, state: SandboxState): void {
  const api =
    (operation: Operation, handler: Handler, refuse?: (c: Context, params: Record<string, string>, next: NextEffect) => Response) => (c: Context) =>
      serve(c, state, operation, handler, refuse);
  for (const prefix of ["/RMS", "/MOLPay"]) {
    for (const [path, endpoint] of [
      [`${prefix}/query/q_by_oid.php`, "q_by_oid"],
      [`${prefix}/q_by_tid.php`, "q_by_tid"],
      [`${prefix}/API/gate-query/index.php`, "gate-query"],
    ] as const) {
      app.on(
        ["GET", "POST"],
        path,
        api(
          "requery",
          (c, params) => requery(c, state, endpoint, params),
          (c, params, next) => requeryAnswer(c, endpoint, params, errorFields(next.code!, next.desc ?? requeryErrorDesc(next.code!) ?? "")),
        ),
      );
    }
    app.on(
      ["GET", "POST"],
      `${prefix}/API/chkstat/returnipn.php`,
      api("echo", (c, params) => ipnEcho(c, state, params)),
    );
    const jsonError = (c: Context, _params: Record<string, string>, next: NextEffect) => errorJson(c, next.code!, next.desc ?? "");
    app.on(
      ["GET", "POST"],
      `${prefix}/API/refundAPI/index.php`,
      api("refund", (c, params) => refund(c, state, params), jsonError),
    );
    app.on(
      ["GET", "POST"],
      `${prefix}/API/refundAPI/q_by_refID.php`,
      api("refund_status", (c, params) => refundStatus(c, state, "RefID", params), jsonError),
    );
    app.on(
      ["GET", "POST"],
      `${prefix}/API/refundAPI/q_by_txn.php`,
      api("refund_status", (c, params) => refundStatus(c, state, "TxnID", params), jsonError),
    );
  }
}

/** A gateway timeout with no body: what a client sees when an answer is lost on the way. */
const noAnswer = () => new Response(null, { status: 504 });

/** Takes the first pending control effect that applies to this operation, counting it down. */
function takeNext(state: SandboxState, operation: Operation): NextEffect | undefined {
  const index = state.next.findIndex((n) => n.remaining > 0 && (n.operation === operation || n.operation === "any"));
  if (index < 0) return undefined;
  const next = state.next[index]!;
  next.remaining -= 1;
  if (next.remaining === 0) state.next.splice(index, 1);
  return next;
}

/** Runs one server API request through the fault switch and the control effects, and records it. */
async function serve(
  c: Context,
  state: SandboxState,
  operation: Operation,
  handler: Handler,
  refuse?: (c: Context, params: Record<string, string>, next: NextEffect) => Response,
): Promise<Response> {
  const params = await readParams(c);
  const record: RequestRecord = {
    operation,
    method: c.req.method,
    path: c.req.path,
    fields: params,
    idempotencyKey: c.req.header("idempotency-key") ?? c.req.header("idempotence-key") ?? null,
    at: state.now().toISOString(),
    outcome: "answered",
  };
  state.requests.push(record);
  const finish = async (response: Response, outcome: RequestRecord["outcome"]) => {
    record.outcome = outcome;
    record.status = response.status;
    record.answer = await response.clone().text();
    return response;
  };

  const { mode, delayMs } = state.fault;
  if (mode === "down") return finish(new Response("Service Unavailable", { status: 503 }), "down");
  if (mode === "error") return finish(new Response("Internal Server Error", { status: 500 }), "error");
  if (mode === "slow") await new Promise((resolve) => setTimeout(resolve, delayMs));

  const next = takeNext(state, operation);
  if (next?.effect === "drop") return finish(noAnswer(), "dropped");
  if (next?.effect === "error_code" && refuse) return finish(refuse(c, params, next), "error_code");
  const response = await handler(c, params);
  if (next?.effect === "lose_answer") {
    await finish(response, "answer_lost");
    record.status = 504;
    return noAnswer();
  }
  return finish(response, "answered");
}

// ---------------------------------------------------------------------------------------------
// Requery

const errorFields = (code: string, desc: string): Record<string, JsonText> => ({ ErrorCode: code, ErrorDesc: desc });

/** An answer in the endpoint's format for the request's type: text lines, or JSON (type=2). */
function requeryAnswer(c: Context, endpoint: RequeryEndpoint, params: Record<string, string>, fields: Record<string, JsonText>): Response {
  if (params.type === "2") return c.body(jsonObject(fields), 200, { "content-type": "application/json; charset=utf-8" });
  const separator = endpoint === "gate-query" ? "=" : ": ";
  const text = (value: JsonText) => (value === null ? "" : typeof value === "string" ? value : value.raw);
  const lines = Object.entries(fields).map(([name, value]) => `${name}${separator}${text(value)}`);
  return c.body(`${lines.join("\n")}\n`, 200, { "content-type": "text/plain; charset=utf-8" });
}

/** The query window in ms: Fiuu's 5 s unless the options say otherwise; 0 is off. */
function queryWindowMs(state: SandboxState): number {
  if (state.options.enforceQueryRate === false) return 0;
  return state.options.queryWindowMs ?? 5_000;
}

function requery(c: Context, state: SandboxState, endpoint: RequeryEndpoint, params: Record<string, string>): Response {
  const { merchantId, verifyKey, secretKey } = state.options;
  const codes = requeryCodes[endpoint];
  const refuse = (code: string, parameter = "", desc?: string) =>
    requeryAnswer(c, endpoint, params, errorFields(code, desc ?? requeryErrorDesc(code, parameter) ?? ""));

  const windowMs = queryWindowMs(state);
  if (windowMs > 0) {
    const key = params.domain ?? "";
    const nowMs = state.now().getTime();
    const last = state.lastQueryAt.get(key);
    if (last !== undefined && nowMs - last < windowMs) return refuse("Q99");
    state.lastQueryAt.set(key, nowMs);
  }

  const idName = endpoint === "q_by_oid" ? "oID" : "txID";
  for (const name of ["amount", idName, "domain", "skey"]) {
    if (!params[name]) return refuse(codes.missing, name);
  }
  const { amount, domain, skey } = params as Record<"amount" | "domain" | "skey", string>;
  const id = params[idName]!;
  if (params.type !== undefined && !["0", "1", "2"].includes(params.type)) return refuse(codes.invalid, "type");
  if (domain !== merchantId) return refuse(codes.merchant);
  if (!safeEqualHex(requerySkey({ id, domain, verifyKey, amount }), skey.toLowerCase())) return refuse(codes.skey);
  const amountMinor = parseFiuuAmount(amount);
  if (amountMinor === undefined) return refuse(codes.invalid, "amount");

  const byOrder = endpoint === "q_by_oid";
  const candidates = [...state.transactions.values()].filter((tx) => (byOrder ? tx.orderid === id : tx.tranID === id));
  const tx = candidates.reverse().find((t) => t.amountMinor === amountMinor);
  if (!tx) {
    if (candidates.length > 0) {
      return refuse(codes.amount, "", endpoint === "gate-query" ? requeryErrorDesc("Q101") : undefined);
    }
    if (byOrder && state.options.requeryNotFound === "dashes") {
      const dash = "-";
      return requeryAnswer(c, endpoint, params, {
        StatCode: dash,
        StatName: dash,
        OrderID: id,
        Amount: dash,
        TranID: dash,
        Domain: dash,
        BillingDate: dash,
        BillingName: dash,
        VrfKey: dash,
        Channel: dash,
        Currency: dash,
        ErrorCode: dash,
        ErrorDesc: dash,
      });
    }
    return refuse(codes.notFound);
  }

  // A shopper still on the hosted page has not paid yet: Fiuu reports such a payment as pending.
  const statCode = tx.status === "awaiting" ? "22" : tx.status;
  // Fiuu answers the amount with two decimals whatever the payment form wrote (spec p.69: asked
  // for 3899, answers 3899.00), and the VrfKey covers that text.
  const answerAmount = toFiuuAmount(tx.amountMinor);
  const json = params.type === "2";
  const amountValue: JsonText = json && state.options.requeryJsonAmount !== "string" ? { raw: answerAmount } : answerAmount;
  const orEmpty = (text: string | undefined): JsonText => (text ? text : json ? null : "");
  const key = vrfKey({ amount: answerAmount, secretKey, domain: merchantId, id: byOrder ? tx.orderid : tx.tranID, statCode });
  const common = { StatCode: statCode, StatName: statNames[statCode] };
  const tail = { Currency: tx.currency, ErrorCode: orEmpty(tx.errorCode), ErrorDesc: orEmpty(tx.errorDesc) };
  if (endpoint === "gate-query") {
    return requeryAnswer(c, endpoint, params, {
      ...common,
      TranID: tx.tranID,
      Amount: amountValue,
      Domain: merchantId,
      Channel: tx.channel,
      VrfKey: key,
      ...tail,
    });
  }
  if (endpoint === "q_by_tid") {
    return requeryAnswer(c, endpoint, params, {
      ...common,
      TranID: tx.tranID,
      Amount: amountValue,
      Domain: merchantId,
      VrfKey: key,
      Channel: tx.channel,
      OrderID: tx.orderid,
      ...tail,
    });
  }
  return requeryAnswer(c, endpoint, params, {
    ...common,
    OrderID: tx.orderid,
    Amount: amountValue,
    TranID: tx.tranID,
    Domain: merchantId,
    BillingDate: tx.createdAt,
    BillingName: tx.billName,
    VrfKey: key,
    Channel: tx.channel,
    ...tail,
  });
}

// ---------------------------------------------------------------------------------------------
// IPN echo

function ipnEcho(c: Context, state: SandboxState, fields: Record<string, string>): Response {
  const problems: string[] = [];
  if (fields.treq !== "1") problems.push("treq=1 is missing");
  if (!fields.tranID || !state.transactions.has(fields.tranID)) problems.push("unknown tranID");
  else if (!verifySkey(fields, state.options.secretKey)) problems.push("the fields no longer match their skey (changed on the way back?)");
  state.ipnEchoes.push({ at: state.now().toISOString(), fields, problems });
  return c.text("OK");
}

// ---------------------------------------------------------------------------------------------
// Refunds

function errorJson(c: Context, code: string, desc: string): Response {
  return c.body(jsonObject({ error_code: code, error_desc: desc }), 200, { "content-type": "application/json; charset=utf-8" });
}

function refundError(c: Context, code: RefundErrorCode, status?: string): Response {
  return errorJson(c, code, refundErrors[code].replace("{{TRANSACTION_STATUS}}", status ?? ""));
}

function refund(c: Context, state: SandboxState, params: Record<string, string>): Response {
  const { merchantId, secretKey } = state.options;
  const required = [
    ["RefundType", "PR001"],
    ["MerchantID", "PR002"],
    ["RefID", "PR003"],
    ["TxnID", "PR004"],
    ["Amount", "PR005"],
    ["Signature", "PR006"],
  ] as const;
  for (const [name, code] of required) if (!params[name]) return refundError(c, code);
  const { RefundType, MerchantID, RefID, TxnID, Amount, Signature } = params as Record<(typeof required)[number][0], string>;
  if (RefundType !== "P") return refundError(c, "PR001");
  if (MerchantID !== merchantId) return refundError(c, "PR007");
  const expected = refundSignature({ refundType: RefundType, merchantId: MerchantID, refId: RefID, txnId: TxnID, amount: Amount, secretKey });
  if (!safeEqualHex(expected, Signature.toLowerCase())) return refundError(c, "PR008");

  // From here on nothing awaits, so two requests at once cannot both pass the checks below.
  // Any RefID seen before is refused, an identical retry included (spec p.104, FIUU.md §4).
  if (state.refunds.has(RefID)) return refundError(c, "PR016");
  const amountMinor = refundAmountPattern.test(Amount) ? parseFiuuAmount(Amount) : undefined;
  if (!amountMinor) return refundError(c, "PR005");
  const tx = state.transactions.get(TxnID);
  if (!tx) return refundError(c, "PR009");
  if (tx.status !== "00") return refundError(c, "PR010", transactionStatusWords[tx.status]);
  if (state.now().getTime() - tx.createdAtMs > refundPeriodMs) return refundError(c, "PR017");

  const bank = {
    bankCode: params.BankCode ?? "",
    bankCountry: params.BankCountry ?? "",
    beneficiaryName: params.BeneficiaryName ?? "",
    beneficiaryAccNo: params.BeneficiaryAccNo ?? "",
  };
  const anyBankField = Object.values(bank).some((value) => value !== "");
  // A shopper who chose on the hosted page paid by card in the sandbox (reportedChannel).
  const byCard = isCardChannel(tx.channel || reportedChannel(tx.requestedChannel));
  if (byCard && anyBankField) return refundError(c, "PR012");
  if (!byCard) {
    if (!bank.bankCode || !bank.beneficiaryName || !bank.beneficiaryAccNo) return refundError(c, "PR014");
    if (!bankCodes.has(bank.bankCode) || (bank.bankCountry !== "" && bank.bankCountry !== "MY")) return refundError(c, "PR013");
    if (!/^[A-Za-z0-9 ]+$/.test(bank.beneficiaryName)) return refundError(c, "PR018");
  }

  const committed = [...state.refunds.values()].filter((r) => r.txnId === TxnID && r.state !== "rejected").reduce((sum, r) => sum + r.amountMinor, 0);
  if (amountMinor > tx.amountMinor - committed) return refundError(c, "PR011");

  const at = malaysiaTime(state.now());
  const notifyUrl = params.notify_url || undefined;
  const created: SandboxRefund = {
    refId: RefID,
    refundId: newRefundID(state),
    refundType: RefundType,
    txnId: TxnID,
    amount: Amount,
    amountMinor,
    ...(notifyUrl ? { notifyUrl } : {}),
    ...(byCard ? {} : { bank: { ...bank, bankCountry: bank.bankCountry || "MY" } }),
    state: "pending",
    reason: "",
    fpxTxnId: "",
    createdAt: at,
    updatedAt: at,
  };
  state.refunds.set(RefID, created);
  return c.body(refundJson(signedRefundFields(state, created, refundStatusCodes[created.state])), 200, {
    "content-type": "application/json; charset=utf-8",
  });
}

function refundStatusJson(refund: SandboxRefund): string {
  return jsonObject({
    TxnID: refund.txnId,
    RefID: refund.refId,
    RefundID: refund.refundId,
    Status: refund.state,
    LastUpdate: refund.updatedAt,
    FPXTxnID: refund.fpxTxnId,
  });
}

function refundStatus(c: Context, state: SandboxState, by: "RefID" | "TxnID", params: Record<string, string>): Response {
  const { merchantId, verifyKey } = state.options;
  const statusError = (code: RefundStatusErrorCode) => errorJson(c, code, refundStatusErrors[code]);
  const id = params[by];
  const { MerchantID, Signature } = params;
  if (!id) return statusError(by === "RefID" ? "INQ011" : "INQ001");
  if (!MerchantID) return statusError("INQ002");
  if (!Signature) return statusError("INQ003");
  if (MerchantID !== merchantId) return statusError("INQ004");
  if (!safeEqualHex(refundStatusSignature(id, MerchantID, verifyKey), Signature.toLowerCase())) return statusError("INQ005");
  const found = by === "RefID" ? [state.refunds.get(id)].filter((r) => r !== undefined) : [...state.refunds.values()].filter((r) => r.txnId === id);
  if (found.length === 0) return statusError("INQ006");
  return c.body(`[${found.map(refundStatusJson).join(",")}]`, 200, { "content-type": "application/json; charset=utf-8" });
}
