import type { Agent as HttpAgent, IncomingMessage } from "node:http";
import type { Config } from "../../core/config.js";
import { checkReceiver, checkReceiverUrl, ReceiverRefusedError, vettedLookup, type AddressLookup } from "./receivers.js";
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
  /** The app's kept-alive connections (AppDeps.webhookConnections); without them the attempt's connection is not kept. */
  connections?: WebhookConnections;
}

/** What a receiver answered, whichever transport carried it. */
interface ReceiverAnswer {
  statusCode: number;
  retryAfter: string | null;
  /** Reads at most `capBytes` of the body and lets the rest go. */
  readExcerpt(capBytes: number): Promise<string>;
  /** Lets the body go unread (a 2xx: its status is all that counts). */
  discard(): void;
}

/**
 * Makes one attempt: checks the receiver's address, POSTs the signed body without following
 * redirects, and reads at most responseReadCapBytes of the answer. The whole attempt — lookup,
 * connection, answer — must finish within timeoutMs. Never throws for the receiver's sake.
 *
 * In Node the connection resolves the receiver's host itself, through `vettedLookup`, and
 * connects to exactly the addresses it checked: no second resolution exists for a rebinding DNS
 * answer to slip between. Workers (workerd) have no such hook: there the host is checked first and
 * the platform's fetch connects (Cloudflare's network does not reach the deployment's loopback or
 * private addresses).
 */
export async function sendWebhook(attempt: WebhookAttempt): Promise<AttemptResult> {
  const signal = AbortSignal.timeout(attempt.timeoutMs);
  const headers = { ...webhookHeaders(attempt.key, attempt.id, attempt.timestampSeconds, attempt.body), "user-agent": "payment-service-webhooks/1" };
  let answer: ReceiverAnswer;
  try {
    if (onWorkers()) {
      const check = await checkReceiver(attempt.receiver, { environment: attempt.environment, lookup: attempt.lookup, signal });
      if (!check.allowed) return { outcome: "refused", error: check.reason };
      answer = await postWithFetch(attempt.receiver, headers, attempt.body, signal);
    } else {
      const check = checkReceiverUrl(attempt.receiver, attempt.environment);
      if (!check.allowed) return { outcome: "refused", error: check.reason };
      answer = await postPinned(check.url!, headers, attempt.body, signal, attempt);
    }
  } catch (error) {
    const refused = refusalOf(error);
    if (refused) return { outcome: "refused", error: refused.reason };
    return failure(error, attempt.timeoutMs);
  }

  const { statusCode } = answer;
  if (statusCode >= 200 && statusCode < 300) {
    // Delivered once the status is in; the body is not needed and must not hold the attempt up.
    answer.discard();
    return { outcome: "delivered", statusCode };
  }
  const excerpt = toExcerpt(await answer.readExcerpt(responseReadCapBytes));
  const text = `HTTP ${statusCode}${excerpt ? `: ${excerpt}` : ""}`;
  if (statusCode === 410) return { outcome: "gone", statusCode, error: `${text} (receiver gone; not retried)` };
  if (statusCode >= 300 && statusCode < 400) {
    return { outcome: "error", reason: "redirect", statusCode, error: `HTTP ${statusCode}: redirect not followed` };
  }
  const retryAfterMs = parseRetryAfter(answer.retryAfter, attempt.now);
  return { outcome: "error", reason: "http_status", statusCode, error: text, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
}

/** Whether this is workerd (Cloudflare Workers), whose fetch is the only way out and takes no lookup. */
function onWorkers(): boolean {
  return typeof navigator !== "undefined" && navigator.userAgent === "Cloudflare-Workers";
}

async function postWithFetch(receiver: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<ReceiverAnswer> {
  // A redirect could lead anywhere, the guarded addresses included: it is an answer, not a hop.
  const response = await fetch(receiver, { method: "POST", headers, body, redirect: "manual", signal });
  return {
    statusCode: response.status,
    retryAfter: response.headers.get("retry-after"),
    readExcerpt: (capBytes) => readCapped(response.body, capBytes),
    discard: () => void response.body?.cancel().catch(() => {}),
  };
}

/** One app's kept-alive connections to receivers (Node only), made by createWebhookConnections. */
export interface WebhookConnections {
  /** The agent for (transport, environment, lookup): every new connection is vetted by its own lookup. */
  agentFor(key: string, lookup: AddressLookup | undefined, create: () => HttpAgent): HttpAgent;
  /** Closes the kept-alive connections. */
  close(): void;
}

/** Kept-alive connections per (transport, environment, lookup), for one app's dependency set (lib/app/deps.ts). */
export function createWebhookConnections(): WebhookConnections {
  const agents = new Map<AddressLookup | undefined, Map<string, HttpAgent>>();
  return {
    agentFor(key, lookup, create) {
      let byLookup = agents.get(lookup);
      if (!byLookup) {
        byLookup = new Map();
        agents.set(lookup, byLookup);
      }
      let agent = byLookup.get(key);
      if (!agent) {
        agent = create();
        byLookup.set(key, agent);
      }
      return agent;
    },
    close() {
      for (const byLookup of agents.values()) for (const agent of byLookup.values()) agent.destroy();
      agents.clear();
    },
  };
}

/**
 * POSTs over node:http(s) on a connection whose only host resolution is `vettedLookup`. node:http
 * never follows redirects; TLS verifies the certificate for the URL's host name (also the SNI).
 */
async function postPinned(
  url: URL,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
  attempt: Pick<WebhookAttempt, "environment" | "lookup" | "connections">,
): Promise<ReceiverAnswer> {
  const secure = url.protocol === "https:";
  // Loaded on first use: nothing is imported for I/O at module load, and the Workers build never loads them.
  const transport = secure ? await import("node:https") : await import("node:http");
  const agentOf = (keepAlive: boolean) =>
    new transport.Agent({ keepAlive, lookup: vettedLookup({ environment: attempt.environment, lookup: attempt.lookup }) as never });
  const agent = attempt.connections
    ? attempt.connections.agentFor(`${url.protocol}${attempt.environment}`, attempt.lookup, () => agentOf(true))
    : agentOf(false);
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const request = transport.request(
      url,
      { method: "POST", headers: { ...headers, "content-length": String(Buffer.byteLength(body)) }, agent, signal },
      resolve,
    );
    request.once("error", reject);
    request.end(body);
  });
  const retryAfter = response.headers["retry-after"];
  return {
    statusCode: response.statusCode ?? 0,
    retryAfter: typeof retryAfter === "string" ? retryAfter : null,
    readExcerpt: (capBytes) => readCappedStream(response, capBytes),
    // Read and dropped in the background (bounded by the attempt's signal), so the connection can be reused.
    discard: () => void response.resume().once("error", () => {}),
  };
}

/** The guard's refusal inside a connection error (node:http hands the lookup's error on, sometimes wrapped). */
function refusalOf(error: unknown): ReceiverRefusedError | undefined {
  for (let e = error as { cause?: unknown } | undefined, depth = 0; e && depth < 5; depth++, e = e.cause as typeof e) {
    if (e instanceof ReceiverRefusedError) return e;
  }
  return undefined;
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

/** readCapped for a Node stream. */
async function readCappedStream(stream: IncomingMessage, capBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= capBytes) break;
    }
  } catch {
    // Timed out or reset mid-body: the status is what counts.
  } finally {
    stream.destroy();
  }
  return new TextDecoder().decode(Buffer.concat(chunks).subarray(0, capBytes));
}

function toExcerpt(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what an excerpt leaves out
  const flat = text.replace(/[\u0000-\u001f\u007f\s]+/g, " ").trim();
  return flat.length > excerptLength ? `${flat.slice(0, excerptLength - 1)}…` : flat;
}
