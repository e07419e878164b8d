import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../http/context.js";
import { ApiError } from "./errors.js";

// Postgres text and jsonb cannot hold U+0000, and a lone UTF-16 surrogate has no UTF-8 form (the
// drivers would write U+FFFD, or jsonb refuses the escape). Input carrying either is refused as
// invalid rather than failing in the database (a 500) or being stored altered.
const unstorable = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The first `max` UTF-16 units of a text, one fewer where the cut would split a surrogate pair
 * (half a pair cannot be stored: see `unstorable`).
 */
export function truncateText(value: string, max: number): string {
  if (value.length <= max) return value;
  const code = value.charCodeAt(max - 1);
  return value.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

/** Whether a string can be stored in Postgres exactly as received. */
export function isStorableText(value: string): boolean {
  return !unstorable.test(value);
}

/**
 * The path (dot-joined, "" for the value itself) of the first string or object key in a parsed
 * value that Postgres cannot store as it is, or undefined when everything can be.
 */
export function findUnstorableText(value: unknown): string | undefined {
  const pending: [unknown, string[]][] = [[value, []]];
  while (pending.length > 0) {
    const [current, path] = pending.pop()!;
    if (typeof current === "string") {
      if (!isStorableText(current)) return path.join(".");
    } else if (current !== null && typeof current === "object") {
      for (const [key, child] of Object.entries(current)) {
        if (!isStorableText(key)) return [...path, key].join(".");
        pending.push([child, [...path, key]]);
      }
    }
  }
  return undefined;
}

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
