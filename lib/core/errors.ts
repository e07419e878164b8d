import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { requestLog, type AppEnv } from "../http/context.js";

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
} as const satisfies Record<string, readonly [ContentfulStatusCode, string]>;

export type ErrorCode = keyof typeof errorCatalog;

export interface FieldError {
  field: string;
  message: string;
}

/** The one error class of the API: a code from the catalogue, a human detail, optional extras. */
export class ApiError extends Error {
  readonly status: ContentfulStatusCode;
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

/** Renders an error as an RFC 9457 problem document with the request id. */
export function problemResponse(c: Context<AppEnv>, error: ApiError): Response {
  const [, title] = errorCatalog[error.code];
  const body = {
    type: `/problems/${error.code}`,
    title,
    status: error.status,
    detail: error.detail,
    code: error.code,
    request_id: c.get("requestId") ?? null,
    ...(error.extra.errors ? { errors: error.extra.errors } : {}),
    ...error.extra.fields,
  };
  const headers: Record<string, string> = { "content-type": "application/problem+json" };
  if (error.extra.retryAfterSeconds !== undefined) headers["retry-after"] = String(error.extra.retryAfterSeconds);
  return c.body(JSON.stringify(body), error.status, headers);
}

/** The app's one onError: known errors keep their code, dependency failures become 503, the rest 500. */
export function handleError(error: Error, c: Context<AppEnv>): Response {
  if (error instanceof ApiError) return problemResponse(c, error);
  if (error instanceof HTTPException) {
    const code = (Object.keys(errorCatalog) as ErrorCode[]).find((k) => errorCatalog[k][0] === error.status);
    if (code && error.status < 500) return problemResponse(c, new ApiError(code, error.message || errorCatalog[code][1]));
  }
  const log = requestLog(c);
  if (isUnavailableError(error)) {
    log?.warn({ err: error }, "dependency unavailable");
    return problemResponse(
      c,
      new ApiError("unavailable", "A dependency of the service is unavailable; try again shortly.", { retryAfterSeconds: 5 }),
    );
  }
  log?.error({ err: error }, "unhandled error");
  return problemResponse(c, new ApiError("internal_error", "An unexpected error occurred."));
}
