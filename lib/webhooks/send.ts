import type { Config } from "../config.js";
import { checkReceiver, type AddressLookup } from "./receivers.js";
import { webhookHeaders } from "./sign.js";

/** Most of a receiver's answer ever read: enough for an excerpt, never a flood into memory. */
export const responseReadCapBytes = 64 * 1024;
/** Longest excerpt of a receiver's answer kept in last_error. */
const excerptLength = 200;

/** What one attempt to send a webhook came to. */
export type AttemptResult =
  /** A 2xx within the timeout. */
  | { outcome: "delivered"; statusCode: number }
  /** The address guard refused the receiver; nothing was sent. */
  | { outcome: "refused"; error: string }
  /** 410 Gone: the receiver asks never to be sent this again. */
  | { outcome: "gone"; statusCode: 410; error: string }
  /** Anything else: another status (redirects included), a timeout, a connection that failed. */
  | {
      outcome: "error";
      reason: "http_status" | "redirect" | "timeout" | "connection";
      statusCode: number | null;
      error: string;
      /** The receiver's Retry-After, in ms from now, when it sent one. */
      retryAfterMs?: number;
    };

export interface WebhookAttempt {
  receiver: string;
  /** The event id: the webhook-id of every attempt. */
  id: string;
  body: string;
  key: Uint8Array;
  /** The attempt's time (the clock's), in unix seconds: webhook-timestamp. */
  timestampSeconds: number;
  timeoutMs: number;
  environment: Config["environment"];
  lookup?: AddressLookup;
  /** For parsing an HTTP-date Retry-After. */
  now: Date;
}

/**
 * Makes one attempt: checks the receiver's address, POSTs the signed body without following
 * redirects, and reads at most responseReadCapBytes of the answer. The whole attempt — lookup,
 * connection, answer — must finish within timeoutMs. Never throws for the receiver's sake.
 */
export async function sendWebhook(attempt: WebhookAttempt): Promise<AttemptResult> {
  const signal = AbortSignal.timeout(attempt.timeoutMs);
  let response: Response;
  try {
    const check = await checkReceiver(attempt.receiver, { environment: attempt.environment, lookup: attempt.lookup, signal });
    if (!check.allowed) return { outcome: "refused", error: check.reason };
    response = await fetch(attempt.receiver, {
      method: "POST",
      headers: { ...webhookHeaders(attempt.key, attempt.id, attempt.timestampSeconds, attempt.body), "user-agent": "payment-service-webhooks/1" },
      body: attempt.body,
      // A redirect could lead anywhere, the guarded addresses included: it is an answer, not a hop.
      redirect: "manual",
      signal,
    });
  } catch (error) {
    return failure(error, attempt.timeoutMs);
  }

  const statusCode = response.status;
  if (statusCode >= 200 && statusCode < 300) {
    // Delivered once the status is in; the body is not needed and must not hold the attempt up.
    response.body?.cancel().catch(() => {});
    return { outcome: "delivered", statusCode };
  }
  const excerpt = toExcerpt(await readCapped(response.body, responseReadCapBytes));
  const answer = `HTTP ${statusCode}${excerpt ? `: ${excerpt}` : ""}`;
  if (statusCode === 410) return { outcome: "gone", statusCode, error: `${answer} (receiver gone; not retried)` };
  if (statusCode >= 300 && statusCode < 400) {
    return { outcome: "error", reason: "redirect", statusCode, error: `HTTP ${statusCode}: redirect not followed` };
  }
  const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), attempt.now);
  return { outcome: "error", reason: "http_status", statusCode, error: answer, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
}

/**
 * A Retry-After header in ms from `now`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
 * Unparseable values are ignored; dates in the past read as 0.
 */
export function parseRetryAfter(value: string | null | undefined, now: Date): number | undefined {
  if (!value) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP-date names its weekday and GMT; Date.parse accepts all three of its formats.
  if (!/GMT$/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now.getTime());
}

function failure(error: unknown, timeoutMs: number): AttemptResult {
  const name = error instanceof Error || error instanceof DOMException ? error.name : "";
  if (name === "TimeoutError" || name === "AbortError") {
    return { outcome: "error", reason: "timeout", statusCode: null, error: `no answer within ${timeoutMs} ms` };
  }
  // Codes only: messages of URL and connection errors can repeat the receiver URL, credentials included.
  return { outcome: "error", reason: "connection", statusCode: null, error: `connection failed (${errorCode(error) ?? (name || "unknown error")})` };
}

function errorCode(error: unknown): string | undefined {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; depth++, e = e.cause as typeof e) {
    if (typeof e.code === "string") return e.code;
  }
  return undefined;
}

/** Reads a body up to `capBytes` and drops the rest; a body that breaks off or times out yields what arrived. */
async function readCapped(body: ReadableStream<Uint8Array> | null, capBytes: number): Promise<string> {
  if (!body) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < capBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } catch {
    // Timed out or reset mid-body: the status is what counts.
  } finally {
    reader.cancel().catch(() => {});
  }
  return new TextDecoder().decode(Buffer.concat(chunks).subarray(0, capBytes));
}

function toExcerpt(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f\s]+/g, " ").trim();
  return flat.length > excerptLength ? `${flat.slice(0, excerptLength - 1)}…` : flat;
}
