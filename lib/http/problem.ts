import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { ApiError, errorCatalog, isUnavailableError, type ErrorCode } from "../core/errors.js";
import { requestLog, type AppEnv } from "./context.js";

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
