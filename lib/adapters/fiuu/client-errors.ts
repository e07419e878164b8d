// The two ways a call to Fiuu fails. The difference decides what a caller may do next:
// FiuuUnavailableError means nothing was decided (back off, ask again later); FiuuProtocolError means
// Fiuu did answer, but with an error code or with something this service refuses to believe.

/** Why Fiuu could not be asked: no connection, no answer in time, a 5xx, or the circuit breaker is open. */
export type FiuuUnavailableReason = "network" | "timeout" | "http_status" | "breaker_open";

/** Fiuu could not be reached or did not answer usefully; nothing was decided, so retry later. */
export class FiuuUnavailableError extends Error {
  override readonly name = "FiuuUnavailableError";
  /** The HTTP status Fiuu answered, for reason "http_status". */
  readonly status?: number;

  constructor(
    readonly reason: FiuuUnavailableReason,
    message: string,
    options: { status?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (options.status !== undefined) this.status = options.status;
  }
}

/**
 * What a requery error code means for the caller (FIUU.md §3's table). "Not found" is not among
 * them: it is an answer (no transaction exists), returned rather than thrown.
 * - `busy`: Q03, Q00007, Q00008 (system busy, external disruption), Q05 (sending failed): ask later.
 * - `blocked`: Q99, too many queries: no query of the merchant at all for at least 5 minutes.
 * - `misconfigured`: a missing or invalid parameter, unknown merchant, wrong skey, wrong amount
 *   (Q01, Q00001, Q02, Q00002, Q07, Q04, Q00003, Q101, Q201, Q00004, Q102, Q202, other Q1xx/Q2xx,
 *   Q204): only a fix here helps; alert, ask again only slowly.
 * - `window_over`: Q06, the query period is over: stop asking about this payment.
 * - `unknown`: a code FIUU.md does not list: handled like a misconfiguration (slow, logged).
 */
export type RequeryRefusal = "busy" | "blocked" | "misconfigured" | "window_over" | "unknown";

/**
 * Fiuu answered, but the answer is an error code (`code` set, e.g. Q03, Q99) or is refused here
 * (a wrong or missing signature, an answer about another order, an unreadable body: no `code`).
 * Only a `retryable` one (Fiuu busy) may be asked again soon; a requery's code is classified in
 * `refusal`, which says what to do instead.
 */
export class FiuuProtocolError extends Error {
  override readonly name = "FiuuProtocolError";
  readonly code?: string;
  readonly retryable: boolean;
  /** For a requery error code: what it means (FIUU.md §3). */
  readonly refusal?: RequeryRefusal;

  constructor(message: string, options: { code?: string; retryable?: boolean; refusal?: RequeryRefusal } = {}) {
    super(message);
    if (options.code !== undefined) this.code = options.code;
    if (options.refusal !== undefined) this.refusal = options.refusal;
    this.retryable = options.retryable ?? false;
  }
}
