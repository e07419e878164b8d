import { createHmac } from "node:crypto";

// Standard Webhooks (https://www.standardwebhooks.com/): the signed content is
// "<webhook-id>.<webhook-timestamp>.<body>", HMAC-SHA256, base64, prefixed with the version "v1,".

const whsecPrefix = "whsec_";
const strictBase64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The HMAC key a WEBHOOK_SECRET stands for: `whsec_<base64>` is decoded as the spec says, any other
 * value is used as its own UTF-8 bytes. A `whsec_` secret that is not strict base64 is refused
 * rather than decoded leniently, because the shop's verifier would decode it differently.
 */
export function webhookSigningKey(secret: string): Buffer {
  if (secret.startsWith(whsecPrefix)) {
    const encoded = secret.slice(whsecPrefix.length);
    if (!strictBase64.test(encoded)) throw new Error("WEBHOOK_SECRET starts with whsec_ but the rest is not base64");
    const key = Buffer.from(encoded, "base64");
    if (key.length === 0) throw new Error("WEBHOOK_SECRET decodes to an empty key");
    return key;
  }
  const key = Buffer.from(secret, "utf8");
  if (key.length === 0) throw new Error("WEBHOOK_SECRET is empty");
  return key;
}

/** The `webhook-signature` value of one message: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. */
export function signWebhook(key: Uint8Array, id: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac("sha256", key).update(`${id}.${timestampSeconds}.${body}`, "utf8").digest("base64")}`;
}

/**
 * The body of an event's webhook: `{ type, timestamp, data }`, timestamp being when the event
 * happened. It depends on the event alone, so every attempt and every redelivery sends the same bytes.
 */
export function webhookBody(event: { type: string; createdAt: Date; data: Record<string, unknown> }): string {
  return JSON.stringify({ type: event.type, timestamp: event.createdAt.toISOString(), data: event.data });
}

/** The headers of one attempt: the event id (the same on every retry), the attempt's time, its signature. */
export function webhookHeaders(key: Uint8Array, id: string, timestampSeconds: number, body: string): Record<string, string> {
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": signWebhook(key, id, timestampSeconds, body),
  };
}
