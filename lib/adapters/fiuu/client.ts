import type { RawConfig } from "../../core/config.js";
import { fetchFormPost, type FormPost } from "./form-post.js";
import type { Logger } from "../../core/logger.js";
import type { Metrics } from "../../core/metrics.js";
import { parseFiuuAmount } from "../../core/money.js";
import { parseAnswer, readRequeryAnswers, type Fields, type RequeryAnswer, type RequeryBy } from "./requery-answers.js";
import {
  classifyRefundRefusal,
  readRefundAnswer,
  readRefundStatus,
  refundNotFoundCode,
  type RefundRefusal,
  type RefundStatus,
} from "./refund-answers.js";
import { parseJsonFields } from "./json.js";
import { truncateText } from "../../core/text.js";
import { FiuuProtocolError, FiuuUnavailableError } from "./client-errors.js";
import { createResilience, type BreakerState } from "./client-resilience.js";
import { refundSignature, refundStatusSignature, requerySkey } from "./signatures.js";

export { FiuuProtocolError, FiuuUnavailableError, type FiuuUnavailableReason, type RequeryRefusal } from "./client-errors.js";
export type { RequeryAnswer, RequeryNotFound, RequeryTransaction } from "./requery-answers.js";
export type { RefundRefusal, RefundStatus } from "./refund-answers.js";

/** The one object of a JSON answer, when it is one object. */
const objectOf = (parsed: Fields | Fields[] | undefined): Fields | undefined => (parsed && !Array.isArray(parsed) ? parsed : undefined);
export type { BreakerState } from "./client-resilience.js";

// The service's only way of asking Fiuu anything (FIUU.md §2–§4): status requeries, IPN echoes,
// refunds and refund status. Every call has a timeout, runs behind one circuit breaker per client,
// and is retried with jittered backoff where repeating it is safe: IPN echoes and refund status
// queries. A requery is sent once (Fiuu allows one query per 5 s and blocks beyond it), and so is
// a refund POST (a resent RefID is refused, PR016).
//
// Not done here: Fiuu's "one query per 5 seconds per merchant" spans every replica, so it is kept
// by whoever schedules requeries (the query slot in lib/domain/payments/reconcile.ts), not by one client's memory.

export interface FiuuClientOptions {
  /** The merchant's settings; a client built without its keys or hosts is refused. */
  fiuu: RawConfig["fiuu"];
  metrics: Metrics;
  logger: Logger;
  /** How requests reach Fiuu; default globalThis.fetch. The Node server passes its undici pool, the local sandbox its app's fetch. */
  transport?: FormPost;
  breaker?: {
    /** Consecutive unavailable answers (network error, timeout, 5xx) that open the breaker; default 5. */
    consecutiveFailures?: number;
    /** How long the breaker stays open before it lets one trial request through; default 30 s. */
    halfOpenAfterMs?: number;
  };
}

/** Where Fiuu pays a refund of a non-card payment (FIUU.md §4: PR014). */
export interface RefundBeneficiary {
  bankCode: string;
  /** Letters, digits and spaces only (PR018). */
  name: string;
  accountNumber: string;
  /** ISO 3166 alpha-2, e.g. MY. */
  country: string;
}

export interface RefundInput {
  /** This service's unique refund reference, sent once (Fiuu refuses a reused one with PR016). */
  refId: string;
  /** Fiuu's tranID of the payment. */
  txnId: string;
  /** Fiuu's 2-decimal amount string ("10.50"), from toFiuuAmount. */
  amount: string;
  /** Where Fiuu posts the refund's final status. */
  notifyUrl?: string;
  /** Required for a non-card payment, refused for a card payment. */
  beneficiary?: RefundBeneficiary;
}

export type RefundResult =
  | { kind: "accepted"; refundId: string; status: RefundStatus; fields: Record<string, string> }
  /** Fiuu answered a PRxxx code: what it means for the refund is `refusal` (see classifyRefundRefusal). */
  | { kind: "rejected"; code: string; message: string; refusal: RefundRefusal };

export type RefundStatusResult =
  | { kind: "found"; refId: string; refundId: string; txnId: string; status: RefundStatus; fields: Record<string, string> }
  /** INQ006: Fiuu has no refund with this RefID, so the request never reached it and may be sent. */
  | { kind: "not_found" }
  /** Any other error code: nothing is known; ask again later. */
  | { kind: "rejected"; code: string; message: string };

export interface FiuuClient {
  /**
   * Asks Fiuu once for the status of an order (q_by_oid.php, type=0). Answers a transaction whose
   * VrfKey verified, or `{ found: false }` when Fiuu has none; throws FiuuProtocolError (with `code`
   * and `refusal`) for Fiuu's other error codes and for answers it cannot believe, and
   * FiuuUnavailableError when Fiuu could not be asked. Never resent: the caller holds the query slot.
   */
  requeryByOrder(input: { orderId: string; amount: string }): Promise<RequeryAnswer>;
  /** The same by Fiuu's tranID (q_by_tid.php, type=0). */
  requeryByTranId(input: { tranId: string; amount: string }): Promise<RequeryAnswer>;
  /** Acknowledges a notification: posts its fields back unchanged plus treq=1 (FIUU.md §2). */
  echoIpn(fields: Record<string, string>): Promise<void>;
  /**
   * Asks Fiuu to refund (part of) a payment, once: never retried here, because a resent RefID is
   * refused (PR016) and a lost answer may hide a refund that was made. A PRxxx answer is returned as
   * `rejected`; an unknown outcome (no answer, 5xx, a refused answer) is thrown, and the caller
   * resolves it with `refundStatus`.
   */
  refund(input: RefundInput): Promise<RefundResult>;
  /** Asks Fiuu where a refund stands, by this service's RefID (q_by_refID); safe to repeat. */
  refundStatus(refId: string): Promise<RefundStatusResult>;
  /** The circuit breaker's state. Open turns half-open on the first call after halfOpenAfterMs. */
  breakerState(): BreakerState;
}

const refundAmountPattern = /^(0|[1-9][0-9]*)\.[0-9]{2}$/;

function requireSetting(fiuu: RawConfig["fiuu"]) {
  const { merchantId, verifyKey, secretKey, apiUrl, paymentUrl } = fiuu;
  if (!merchantId || !verifyKey || !secretKey || !apiUrl || !paymentUrl) {
    const missing = Object.entries({ merchantId, verifyKey, secretKey, apiUrl, paymentUrl })
      .filter(([, value]) => !value)
      .map(([name]) => name);
    throw new TypeError(`the Fiuu client needs ${missing.join(", ")}`);
  }
  if (!(fiuu.timeoutMs > 0)) throw new TypeError("the Fiuu client needs a positive timeoutMs");
  const base = (url: string) => url.replace(/\/+$/, "");
  return { merchantId, verifyKey, secretKey, apiUrl: base(apiUrl), paymentUrl: base(paymentUrl) };
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
    post: options.transport ?? fetchFormPost(),
    consecutiveFailures: options.breaker?.consecutiveFailures ?? 5,
    halfOpenAfterMs: options.breaker?.halfOpenAfterMs ?? 30_000,
  });

  /**
   * Sends one requery and reads its answer. Never resent here: Fiuu allows one query per 5 seconds
   * per merchant and blocks the merchant's IP beyond that (FIUU.md §3), so a failed query waits for
   * the next slot its scheduler takes. A misconfiguration (or an unknown code) is logged and counted
   * in fiuu_misconfiguration_total{operation="requery"} for the FiuuMisconfigured alert.
   */
  async function requery(path: string, form: Record<string, string>, query: RequeryBy): Promise<RequeryAnswer> {
    try {
      return await resilience.run(
        {
          operation: "requery",
          url: `${apiUrl}${path}`,
          form,
          interpret: ({ status, body }) => {
            if (!isSuccess(status)) throw new FiuuProtocolError(`Fiuu answered HTTP ${status} to a requery`);
            const parsed = parseAnswer(body);
            if (!parsed) throw new FiuuProtocolError("the requery answer is neither Key=Value lines nor JSON");
            return { value: readRequeryAnswers(parsed, query, keys), outcome: "success" };
          },
        },
        { retry: false },
      );
    } catch (error) {
      if (error instanceof FiuuProtocolError && error.code !== undefined && (error.refusal === "misconfigured" || error.refusal === "unknown")) {
        const code = /^[A-Z]{1,4}[0-9]{1,6}$/.test(error.code) ? error.code : "other";
        options.metrics.fiuuMisconfigured.inc({ operation: "requery", code });
        options.logger.error(
          { merchantId, operation: "requery", code, refusal: error.refusal },
          "Fiuu refused a requery as misconfigured: check the merchant id, Verify Key, API host and amount",
        );
      }
      throw error;
    }
  }

  /** Reads a refund API's error answer `{ error_code, error_desc }`, if that is what it is. */
  function refundError(fields: Fields | undefined): { kind: "rejected"; code: string; message: string } | undefined {
    if (!fields?.error_code) return undefined;
    return { kind: "rejected", code: truncateText(fields.error_code, 32), message: truncateText(fields.error_desc ?? "", 255) };
  }

  function countMisconfigured(operation: "refund" | "refund_status", code: string) {
    options.metrics.fiuuMisconfigured.inc({ operation, code: /^[A-Z]{1,4}[0-9]{1,6}$/.test(code) ? code : "other" });
    options.logger.error({ merchantId, operation, code }, "Fiuu refused a call as misconfigured: check the merchant id, keys and API host");
  }

  return {
    // type=0: plain-text answers, as every official client asks (FIUU.md §3); type=2's JSON writes
    // Amount as a JSON number. Both are read (parseAnswer), numbers kept as written.
    async requeryByOrder({ orderId, amount }) {
      requireAmount(amount, false);
      const form = { amount, oID: orderId, domain: merchantId, skey: requerySkey({ id: orderId, domain: merchantId, verifyKey, amount }), type: "0" };
      return requery("/RMS/query/q_by_oid.php", form, { by: "order", orderId });
    },

    async requeryByTranId({ tranId, amount }) {
      requireAmount(amount, false);
      const form = { amount, txID: tranId, domain: merchantId, skey: requerySkey({ id: tranId, domain: merchantId, verifyKey, amount }), type: "0" };
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

    async refund({ refId, txnId, amount, notifyUrl, beneficiary }) {
      requireAmount(amount, true);
      const sent = { refundType: "P", merchantId, refId, txnId, amount };
      const form: Record<string, string> = {
        RefundType: sent.refundType,
        MerchantID: merchantId,
        RefID: refId,
        TxnID: txnId,
        Amount: amount,
        ...(notifyUrl ? { notify_url: notifyUrl } : {}),
        ...(beneficiary
          ? {
              BankCode: beneficiary.bankCode,
              BankCountry: beneficiary.country,
              BeneficiaryName: beneficiary.name,
              BeneficiaryAccNo: beneficiary.accountNumber,
            }
          : {}),
        Signature: refundSignature({ ...sent, secretKey }),
      };
      return resilience.run<RefundResult>(
        {
          operation: "refund",
          url: `${apiUrl}/RMS/API/refundAPI/index.php`,
          form,
          // The spec's idempotency header (p.127); not known to be honoured by the refund API, so
          // nothing relies on it: a RefID is sent once, and an unknown outcome is looked up.
          headers: { "idempotency-key": refId.slice(0, 64) },
          interpret: ({ status, body }) => {
            const fields = objectOf(parseJsonFields(body));
            const rejected = refundError(fields);
            if (rejected) {
              const refusal = classifyRefundRefusal(rejected.code);
              if (refusal === "misconfigured") countMisconfigured("refund", rejected.code);
              return { value: { ...rejected, refusal }, outcome: "rejected" };
            }
            if (!isSuccess(status)) throw new FiuuProtocolError(`Fiuu answered HTTP ${status} to a refund`);
            if (!fields) throw new FiuuProtocolError("the refund answer is not a JSON object");
            const { refundId, status: refundStatus } = readRefundAnswer(fields, sent, secretKey);
            return { value: { kind: "accepted", refundId, status: refundStatus, fields }, outcome: "success" };
          },
        },
        { retry: false },
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
          // of Fiuu's API host to this request, and only ever settles a refund this service made.
          interpret: ({ status, body }) => {
            const parsed = parseJsonFields(body);
            const rejected = refundError(objectOf(parsed));
            if (rejected) {
              if (rejected.code === refundNotFoundCode) return { value: { kind: "not_found" }, outcome: "success" };
              countMisconfigured("refund_status", rejected.code);
              return { value: rejected, outcome: "rejected" };
            }
            if (!isSuccess(status)) throw new FiuuProtocolError(`Fiuu answered HTTP ${status} to a refund status query`);
            if (!parsed) throw new FiuuProtocolError("the refund status answer is not JSON");
            return { value: { kind: "found", ...readRefundStatus(parsed, refId, merchantId) }, outcome: "success" };
          },
        },
        // A query changes nothing at Fiuu.
        { retry: true },
      );
    },

    breakerState: () => resilience.breakerState(),
  };
}
