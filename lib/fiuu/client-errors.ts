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
 * Fiuu answered, but the answer is an error code (`code` set, e.g. Q03, Q99) or is refused here
 * (a wrong or missing signature, an answer about another order, an unreadable body: no `code`).
 * Only a `retryable` one (Q99, throttled) may be asked again, after a pause.
 */
export class FiuuProtocolError extends Error {
  override readonly name = "FiuuProtocolError";
  readonly code?: string;
  readonly retryable: boolean;

  constructor(message: string, options: { code?: string; retryable?: boolean } = {}) {
    super(message);
    if (options.code !== undefined) this.code = options.code;
    this.retryable = options.retryable ?? false;
  }
}
