import { createMiddleware } from "hono/factory";
import { ApiError } from "../core/errors.js";
import type { AppEnv } from "./context.js";

const jsonType = /^application\/([\w.+-]+\+)?json\b/i;
const encodedNul = /%00/;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Refuses, before any route runs, input no field of the service can hold: an encoded NUL anywhere
 * in the URL (path or query), and a JSON body that is not UTF-8 (RFC 8259 §8.1), which would
 * otherwise be decoded with U+FFFD replacements and stored altered. Place after the body limit,
 * so an oversized body is refused before it is read.
 */
export function refuseUndecodableInput() {
  return createMiddleware<AppEnv>(async (c, next) => {
    if (encodedNul.test(c.req.url)) {
      throw new ApiError("invalid_request", "The URL contains an encoded NUL character.");
    }
    // Checked by method and header rather than `raw.body`, which would build a stream per request.
    if (c.req.method !== "GET" && c.req.method !== "HEAD" && jsonType.test(c.req.header("content-type") ?? "")) {
      const bytes = await c.req.arrayBuffer();
      let text: string;
      try {
        text = strictUtf8.decode(bytes);
      } catch {
        throw new ApiError("invalid_request", "The JSON body is not valid UTF-8.");
      }
      // Hono's body cache would otherwise decode the bytes again, through a Response, for each
      // later reader (the idempotency fingerprint, the validator's JSON).
      (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    }
    return next();
  });
}
