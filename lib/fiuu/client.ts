import type { Config } from "../config.js";
import { formPostOver, type FormPost } from "../http/form-post.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { parseFiuuAmount } from "../money.js";
import { parseAnswer, parseJsonObject, readRequeryAnswers, type Fields, type RequeryAnswer, type RequeryBy } from "./requery-answers.js";
import { normaliseRefundStatus, readRefundAnswer, type RefundStatus } from "./refund-answers.js";
import { FiuuProtocolError, FiuuUnavailableError } from "./client-errors.js";
import { createResilience, type BreakerState } from "./client-resilience.js";
import { refundSignature, refundStatusSignature, requerySkey } from "./signatures.js";

export { FiuuProtocolError, FiuuUnavailableError, type FiuuUnavailableReason } from "./client-errors.js";
export type { RequeryAnswer } from "./requery-answers.js";
export type { RefundStatus } from "./refund-answers.js";
export type { BreakerState } from "./client-resilience.js";

// The service's only way of asking Fiuu anything (FIUU.md §2–§4): status requeries, IPN echoes,
// refunds and refund status. Every call has a timeout, runs behind one circuit breaker per client,
// and is retried with jittered backoff where repeating it is safe — which here is every call:
// queries and echoes change nothing at Fiuu, and a refund is keyed by its RefID (below).
//
// Not done here: Fiuu's "one query per 5 seconds per merchant" spans every replica, so it is kept
// by whoever schedules requeries (a shared rate limit), not by one client's memory.

export interface FiuuClientOptions {
  fiuu: Config["fiuu"];
  metrics: Metrics;
  logger: Logger;
  /** How requests reach Fiuu; default globalThis.fetch. Tests pass a sandbox app's fetch. */
  fetch?: (request: Request) => Promise<Response>;
  /** A cheaper transport than `fetch`, where there is one (the Node server's node:http); used instead of `fetch` when given. */
  post?: FormPost;
  breaker?: {
    /** Consecutive unavailable answers (network error, timeout, 5xx) that open the breaker; default 5. */
    consecutiveFailures?: number;
    /** How long the breaker stays open before it lets one trial request through; default 30 s. */
    halfOpenAfterMs?: number;
  };
}

export interface RefundInput {
  /** This service's unique refund reference; resending it is how a retry stays one refund. */
  refId: string;
  /** Fiuu's tranID of the payment. */
  txnId: string;
  /** Fiuu's 2-decimal amount string ("10.50"), from toFiuuAmount. */
  amount: string;
  /** Where Fiuu posts the refund's final status. */
  notifyUrl?: string;
}

export type RefundResult =
  | { kind: "accepted"; refundId: string; status: RefundStatus; fields: Record<string, string> }
  /** Fiuu refused the refund (PR0xx: over-refund, unknown transaction, ...): a decision, not an outage. */
  | { kind: "rejected"; code: string; message: string };

export type RefundStatusResult =
  | {
      kind: "found";
      refId: string;
      refundId: string;
      txnId: string;
      amount: string;
      status: RefundStatus;
      reason: string;
      fields: Record<string, string>;
    }
  /** Fiuu answered an error code; PR004 means it has no refund with this RefID (it may be resent). */
  | { kind: "rejected"; code: string; message: string };

export interface FiuuClient {
  /** Asks Fiuu for the status of an order (q_by_oid.php); the answer's VrfKey is verified. */
  requeryByOrder(input: { orderId: string; amount: string }): Promise<RequeryAnswer>;
  /** Asks Fiuu for the status of a transaction (q_by_tid.php); the answer's VrfKey is verified. */
  requeryByTranId(input: { tranId: string; amount: string }): Promise<RequeryAnswer>;
  /** Acknowledges a notification: posts its fields back unchanged plus treq=1 (FIUU.md §2). */
  echoIpn(fields: Record<string, string>): Promise<void>;
  /** Asks Fiuu to refund (part of) a payment; a PR0xx answer is returned as `rejected`, not thrown. */
  refund(input: RefundInput): Promise<RefundResult>;
  /** Asks Fiuu where a refund stands, by this service's RefID. */
  refundStatus(refId: string): Promise<RefundStatusResult>;
  /** The circuit breaker's state. Open turns half-open on the first call after halfOpenAfterMs. */
  breakerState(): BreakerState;
}

const refundAmountPattern = /^(0|[1-9][0-9]*)\.[0-9]{2}$/;

function requireSetting(fiuu: Config["fiuu"]) {
  const { merchantId, verifyKey, secretKey, apiUrl, paymentUrl } = fiuu;
  const missing = Object.entries({ merchantId, verifyKey, secretKey, apiUrl, paymentUrl })
    .filter(([, value]) => !value)
    .map(([name]) => name);
  if (missing.length > 0) throw new TypeError(`the Fiuu client needs ${missing.join(", ")}`);
  if (!(fiuu.timeoutMs > 0)) throw new TypeError("the Fiuu client needs a positive timeoutMs");
  const base = (url: string) => url.replace(/\/+$/, "");
  return { merchantId: merchantId!, verifyKey: verifyKey!, secretKey: secretKey!, apiUrl: base(apiUrl!), paymentUrl: base(paymentUrl!) };
}

function requireAmount(amount: string, exactlyTwoDecimals: boolean): void {
  const ok = exactlyTwoDecimals ? refundAmountPattern.test(amount) : parseFiuuAmount(amount) !== undefined;
  if (!ok) throw new TypeError(`"${amount}" is not a Fiuu amount string such as "10.50"`);
}

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

/** Builds a Fiuu client for one merchant. Creating it does no I/O; all state lives in the client. */
export function createFiuuClient(options: FiuuClientOptions): FiuuClient {
  const { merchantId, verifyKey, secretKey, apiUrl, paymentUrl } = requireSetting(options.fiuu);
  const keys = { merchantId, secretKey };
  const resilience = createResilience({
    fiuu: options.fiuu,
    merchantId,
    metrics: options.metrics,
    logger: options.logger,
    post: options.post ?? formPostOver(options.fetch ?? ((request) => globalThis.fetch(request))),
    consecutiveFailures: options.breaker?.consecutiveFailures ?? 5,
    halfOpenAfterMs: options.breaker?.halfOpenAfterMs ?? 30_000,
  });

  function requery(path: string, form: Record<string, string>, query: RequeryBy): Promise<RequeryAnswer> {
    return resilience.run(
      {
        operation: "requery",
        url: `${apiUrl}${path}`,
        form,
        interpret: ({ status, body }) => {
          if (!isSuccess(status)) throw new FiuuProtocolError(`Fiuu answered HTTP ${status} to a requery`);
          const parsed = parseAnswer(body);
          if (!parsed) throw new FiuuProtocolError("the requery answer is neither JSON nor Key=Value lines");
          return { value: readRequeryAnswers(parsed, query, keys), outcome: "success" };
        },
      },
      // A query changes nothing at Fiuu, so asking again is always safe.
      { retry: true },
    );
  }

  /** Reads a refund API's error answer `{ error_code, error_desc }`, if that is what it is. */
  function refundError(fields: Fields | undefined): { kind: "rejected"; code: string; message: string } | undefined {
    if (!fields?.error_code) return undefined;
    return { kind: "rejected", code: fields.error_code, message: fields.error_desc ?? "" };
  }

  return {
    async requeryByOrder({ orderId, amount }) {
      requireAmount(amount, false);
      const form = { amount, oID: orderId, domain: merchantId, skey: requerySkey({ id: orderId, domain: merchantId, verifyKey, amount }), type: "2" };
      return requery("/RMS/query/q_by_oid.php", form, { by: "order", orderId });
    },

    async requeryByTranId({ tranId, amount }) {
      requireAmount(amount, false);
      const form = { amount, txID: tranId, domain: merchantId, skey: requerySkey({ id: tranId, domain: merchantId, verifyKey, amount }), type: "2" };
      return requery("/RMS/q_by_tid.php", form, { by: "tranID", tranId });
    },

    async echoIpn(fields) {
      await resilience.run(
        {
          operation: "echo",
          // The echo goes to the payment host, not the API host (FIUU.md §2).
          url: `${paymentUrl}/RMS/API/chkstat/returnipn.php`,
          form: { ...fields, treq: "1" },
          interpret: ({ status }) => {
            if (!isSuccess(status)) throw new FiuuUnavailableError("http_status", `Fiuu answered HTTP ${status} to an IPN echo`, { status });
            return { value: undefined, outcome: "success" };
          },
        },
        // Fiuu takes the same echo any number of times; it only stops re-sending the notification.
        { retry: true },
      );
    },

    async refund({ refId, txnId, amount, notifyUrl }) {
      requireAmount(amount, true);
      const sent = { refundType: "P", merchantId, refId, txnId, amount };
      const form: Record<string, string> = {
        RefundType: sent.refundType,
        MerchantID: merchantId,
        RefID: refId,
        TxnID: txnId,
        Amount: amount,
        ...(notifyUrl ? { notify_url: notifyUrl } : {}),
        Signature: refundSignature({ ...sent, secretKey }),
      };
      return resilience.run<RefundResult>(
        {
          operation: "refund",
          url: `${apiUrl}/RMS/API/refundAPI/index.php`,
          form,
          interpret: ({ status, body }) => {
            const fields = parseJsonObject(body);
            const rejected = refundError(fields);
            if (rejected) return { value: rejected, outcome: "rejected" };
            if (!isSuccess(status)) throw new FiuuProtocolError(`Fiuu answered HTTP ${status} to a refund`);
            if (!fields) throw new FiuuProtocolError("the refund answer is not a JSON object");
            const { refundId, status: refundStatus } = readRefundAnswer(fields, sent, secretKey);
            return { value: { kind: "accepted", refundId, status: refundStatus, fields }, outcome: "success" };
          },
        },
        // Safe to repeat: Fiuu treats the same RefID (same TxnID and Amount) as the same refund and
        // answers it again, so a retry after a lost answer can never refund twice.
        { retry: true },
      );
    },

    async refundStatus(refId) {
      const form = { RefID: refId, MerchantID: merchantId, Signature: refundStatusSignature(refId, merchantId, verifyKey) };
      return resilience.run<RefundStatusResult>(
        {
          operation: "refund_status",
          url: `${apiUrl}/RMS/API/refundAPI/q_by_refID.php`,
          form,
          // FIUU.md gives this answer no signature; it is believed because it is the direct answer
          // of Fiuu's API host to this request, and checked to be about this refund.
          interpret: ({ status, body }) => {
            const fields = parseJsonObject(body);
            const rejected = refundError(fields);
            if (rejected) return { value: rejected, outcome: "rejected" };
            if (!isSuccess(status)) throw new FiuuProtocolError(`Fiuu answered HTTP ${status} to a refund status query`);
            if (!fields) throw new FiuuProtocolError("the refund status answer is not a JSON object");
            if (fields.RefID !== refId) throw new FiuuProtocolError("the refund status answer is about another refund");
            if (fields.MerchantID !== undefined && fields.MerchantID !== merchantId) {
              throw new FiuuProtocolError("the refund status answer is for another merchant");
            }
            const refundStatus = normaliseRefundStatus(fields.Status ?? "");
            if (!refundStatus) throw new FiuuProtocolError(`the refund status answer has an unknown Status "${fields.Status ?? ""}"`);
            return {
              value: {
                kind: "found",
                refId,
                refundId: fields.RefundID ?? "",
                txnId: fields.TxnID ?? "",
                amount: fields.Amount ?? "",
                status: refundStatus,
                reason: fields.reason ?? "",
                fields,
              },
              outcome: "success",
            };
          },
        },
        // A query changes nothing at Fiuu.
        { retry: true },
      );
    },

    breakerState: () => resilience.breakerState(),
  };
}
