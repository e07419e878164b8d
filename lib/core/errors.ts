// The service's error vocabulary, shared by every layer; lib/http/problem.ts renders it as
// problem+json.

/** An HTTP status an error answers with (a body always follows). */
type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

/** Every machine-readable error code the API answers, with its HTTP status and title. */
export const errorCatalog = {
  invalid_request: [400, "Invalid request"],
  idempotency_key_missing: [400, "Idempotency-Key header required"],
  unauthenticated: [401, "Authentication required"],
  forbidden: [403, "Forbidden"],
  not_found: [404, "Not found"],
  method_not_allowed: [405, "Method not allowed"],
  idempotency_key_in_use: [409, "Idempotency key in use"],
  order_has_payment: [409, "Order already has a payment"],
  invalid_state: [409, "Invalid state for this operation"],
  payload_too_large: [413, "Payload too large"],
  unsupported_media_type: [415, "Unsupported media type"],
  idempotency_key_reused: [422, "Idempotency key reused with a different request"],
  amount_exceeds_refundable: [422, "Amount exceeds the refundable amount"],
  beneficiary_required: [422, "Beneficiary bank account required"],
  beneficiary_not_applicable: [422, "Beneficiary not applicable to a card payment"],
  rate_limited: [429, "Too many requests"],
  internal_error: [500, "Internal server error"],
  unavailable: [503, "Service temporarily unavailable"],
} as const satisfies Record<string, readonly [ErrorStatus, string]>;

export type ErrorCode = keyof typeof errorCatalog;

export interface FieldError {
  field: string;
  message: string;
}

/** The one error class of the API: a code from the catalogue, a human detail, optional extras. */
export class ApiError extends Error {
  readonly status: ErrorStatus;
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    readonly extra: { errors?: FieldError[]; retryAfterSeconds?: number; fields?: Record<string, unknown> } = {},
  ) {
    super(detail);
    this.name = "ApiError";
    this.status = errorCatalog[code][0];
  }
}

const unavailableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
]);

/** Whether an error means a dependency (database, Redis) is unreachable, not that the request is bad. */
export function isUnavailableError(error: unknown): boolean {
  for (let e = error as { code?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0; e && depth < 5; depth++) {
    const code = typeof e.code === "string" ? e.code : "";
    if (unavailableCodes.has(code) || code.startsWith("08")) return true;
    const message = typeof e.message === "string" ? e.message : "";
    if (/Connection is closed|Command timed out|Stream isn't writeable|connect ECONNREFUSED|fetch failed/i.test(message)) return true;
    e = e.cause as typeof e;
  }
  return false;
}

/** An error's name and driver code, for logs and job rows: never its message, which may carry values. */
export function errorName(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${error.name} (${code})` : error.name;
  }
  return typeof error;
}

/** The driver's own message (e.g. "connect ECONNREFUSED"), never Drizzle's query wrapper, which lists parameters. */
export function rootCauseMessage(error: unknown): string | undefined {
  let e = error as { cause?: unknown; message?: unknown } | undefined;
  for (let depth = 0; e?.cause && depth < 5; depth++) e = e.cause as typeof e;
  const message = typeof e?.message === "string" ? e.message : undefined;
  return message?.startsWith("Failed query") ? undefined : message;
}
