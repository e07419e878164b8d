import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { requestLog, type AppEnv } from "./context.js";
import { hashSecret, randomToken } from "../core/crypto.js";
import { ApiError } from "../core/errors.js";
import { withoutErasedData } from "../domain/retention/replay.js";
import { sendPipeline, type RedisCommand } from "../adapters/redis/index.js";
import { enforceLimit, limitWindow, rateLimit, type RateLimitOptions } from "./rate-limit.js";

export interface IdempotencyOptions {
  /** How long a "running" claim holds before a crashed replica's claim frees itself (default 30 s). */
  lockTimeoutMs?: number;
  /** How long a finished answer is kept for replay (default 24 h). */
  retentionSeconds?: number;
  /**
   * A rate limit the request also counts against, in the claim's own round trip (rateLimit's
   * options): over it, 429, and the claim is given back. A request refused before the claim (no
   * or a malformed Idempotency-Key) is counted too, so that no request escapes the budget.
   */
  rateLimit?: RateLimitOptions;
}

type Running = { state: "running"; fingerprint: string; owner: string };
/** A finished request's answer, as replayed. */
type Answer = { status: number; body: string; contentType: string | null; location?: string };
type Done = { state: "done"; fingerprint: string } & Answer;
/**
 * A finished request as Redis holds it: the answer sealed with the field cipher
 * (`v1.<keyId>.<nonce>.<ciphertext>.<tag>`, lib/core/crypto.ts), because a create's answer carries the
 * customer's name, email and mobile and the live client_secret, and the database — the source of
 * truth — keeps the secret only as a hash, so the answer cannot be rebuilt from it. The key id
 * lets a record written before an ENCRYPTION_KEY rotation be read with ENCRYPTION_KEY_PREVIOUS.
 */
type SealedDone = { state: "done"; fingerprint: string; sealed: string };
type StoredRecord = Running | Done | SealedDone;

const maxKeyLength = 255;
// Printable ASCII only: the header is echoed into Redis keys and logs.
const keyPattern = /^[\x20-\x7E]+$/;
// Answers that say nothing about the request itself are not kept: a retry must be able to succeed.
const notStored = new Set([429]);
const nullBodyStatuses = new Set([101, 204, 205, 304]);

/**
 * Makes a mutating call safe to retry (Stripe / IETF Idempotency-Key draft): the first request
 * under a key runs, later ones with the same body get its stored answer with
 * `Idempotency-Replayed: true`, with another body 422, while it still runs 409. Keys are scoped
 * to the caller and kept `retentionSeconds`, the answer encrypted (SealedDone): Redis never holds
 * customer details or a client secret in clear. Place after `authenticate`. When Redis is down the
 * call is refused with 503 (fail closed): the handler never runs without the guard.
 */
export function idempotency(options: IdempotencyOptions = {}) {
  const lockTimeoutMs = options.lockTimeoutMs ?? 30_000;
  const retentionSeconds = options.retentionSeconds ?? 86_400;

  const limit = options.rateLimit;
  // Counts a request refused before its claim, as the limit alone would (it fails open).
  const countOnly = limit && rateLimit(limit);

  return createMiddleware<AppEnv>(async (c, next) => {
    const key = c.req.header("Idempotency-Key");
    if (key === undefined || key.length === 0 || key.length > maxKeyLength || !keyPattern.test(key)) {
      if (countOnly) await countOnly(c, async () => {});
      if (key === undefined) throw new ApiError("idempotency_key_missing", "Send an Idempotency-Key header with this request.");
      throw new ApiError("invalid_request", `Idempotency-Key must be 1 to ${maxKeyLength} printable ASCII characters.`, {
        errors: [{ field: "Idempotency-Key", message: `1 to ${maxKeyLength} printable ASCII characters` }],
      });
    }

    const { redis } = c.get("deps");
    const redisKey = `idempotency:${scopeOf(c)}:${key}`;
    // Hono caches the body, so the validator after this middleware reads the same text again.
    const fingerprint = hashSecret(`${c.req.method}\n${c.req.path}\n${await c.req.text()}`);
    const owner = randomToken(12);
    const claim: Running = { state: "running", fingerprint, owner };

    const guarded = async <T>(command: () => Promise<T>): Promise<T> => {
      try {
        return await command();
      } catch (error) {
        requestLog(c)!.warn({ err: error }, "idempotency store unavailable; refusing the request");
        throw new ApiError("unavailable", "The idempotency store is unavailable; retry with the same Idempotency-Key shortly.", {
          retryAfterSeconds: 5,
        });
      }
    };

    // One round trip: the limit's count (when there is one) and the claim, which SET … NX GET
    // either takes (answering nil) or answers the record holding the key, atomically.
    const window = limit && limitWindow(c, limit);
    const [count, held] = await guarded(async () => {
      const take: RedisCommand = ["set", redisKey, JSON.stringify(claim), "nx", "get", "px", lockTimeoutMs];
      const commands: RedisCommand[] = window ? [["incr", window.redisKey], ["expire", window.redisKey, window.ttlSeconds, "nx"], take] : [take];
      const replies = await sendPipeline(redis, commands);
      return [window ? Number(replies[0]) : 0, replies.at(-1) as string | null] as const;
    });
    const claimed = held === null;
    const existing = claimed ? null : parseRecord(held);
    if (window && count > window.limit) {
      if (claimed) await release(c, redisKey, owner);
      enforceLimit(window, count);
    }

    if (!claimed) {
      if (!existing || existing.state === "running") {
        if (existing && existing.fingerprint !== fingerprint) throw reused();
        throw new ApiError("idempotency_key_in_use", "A request with this Idempotency-Key is still being processed; retry shortly.", {
          retryAfterSeconds: 1,
        });
      }
      if (existing.fingerprint !== fingerprint) throw reused();
      return replay(c, await withoutErased(c, unseal(c, existing)));
    }

    // The handler's JSON is kept as it is rendered, so that storing the answer need not read the
    // body back: that read makes the Node adapter build a web Response with streams (about 0.2 ms
    // of CPU a request); the answer rendered otherwise (an error's problem document) is read.
    let rendered: { response: Response; text: string } | undefined;
    c.json = ((object: unknown, arg?: ContentfulStatusCode | ResponseInit, headers?: Record<string, string>) => {
      const text = JSON.stringify(object);
      const response: Response = c.body(text, arg as ContentfulStatusCode, { "Content-Type": "application/json", ...headers });
      rendered = { response, text };
      return response;
    }) as unknown as typeof c.json;

    let failed = true;
    try {
      await next();
      failed = c.res.status >= 500;
    } finally {
      if (failed) await release(c, redisKey, owner);
    }
    // Hono turns a handler's error into the onError answer before it reaches here, so `c.error`
    // with a 5xx is handled above; anything below 500 is the request's real, repeatable outcome.
    const status = c.res.status;
    if (status < 500 && !notStored.has(status)) {
      // The body is read once and the answer rebuilt from the text: cheaper than clone(), which
      // would tee the body into streams and push the server onto its slow streaming path.
      const response = c.res;
      const empty = nullBodyStatuses.has(status);
      let body: string;
      if (rendered?.response === response) {
        body = rendered.text;
      } else {
        body = empty ? "" : await response.text();
        c.res = undefined; // replaced, not merged: the headers are carried over whole
        c.res = new Response(empty ? null : body, { status, headers: response.headers });
      }
      const answer: Answer = {
        status,
        body,
        contentType: response.headers.get("content-type"),
        ...(response.headers.has("location") ? { location: response.headers.get("location")! } : {}),
      };
      try {
        const done: SealedDone = { state: "done", fingerprint, sealed: c.get("deps").cipher.encrypt(JSON.stringify(answer)) };
        await redis.set(redisKey, done, { ex: retentionSeconds });
      } catch (error) {
        // The handler has run and its effects are committed: answering 503 now would invite a
        // retry that runs it again. Answer truthfully; the claim expires after lockTimeoutMs.
        requestLog(c)!.error({ err: error, status }, "could not store the idempotent answer");
      }
    } else if (!failed) {
      await release(c, redisKey, owner);
    }
  });
}

/** The namespace a caller's keys live in: a token's sub, or the hash of a checkout page's client secret. */
function scopeOf(c: Context<AppEnv>): string {
  const principal = c.get("principal") as AppEnv["Variables"]["principal"] | undefined;
  if (!principal) throw new Error("idempotency() must run after authenticate()");
  // encodeURIComponent keeps ':' out of the scope, so scope and key cannot be confused.
  return principal.kind === "token" ? `sub:${encodeURIComponent(principal.sub)}` : `client:${hashSecret(principal.secret)}`;
}

/** Deletes our own claim so a retry may run; someone else's newer claim is left alone. */
async function release(c: Context<AppEnv>, redisKey: string, owner: string) {
  try {
    const current = parseRecord(await c.get("deps").redis.get<string>(redisKey));
    if (current?.state === "running" && current.owner === owner) await c.get("deps").redis.del(redisKey);
  } catch (error) {
    requestLog(c)!.warn({ err: error }, "could not release an idempotency claim; it expires by itself");
  }
}

function replay(c: Context<AppEnv>, done: Done): Response {
  const headers: Record<string, string> = { "Idempotency-Replayed": "true" };
  if (done.contentType) headers["content-type"] = done.contentType;
  if (done.location) headers.location = done.location;
  if (nullBodyStatuses.has(done.status)) return c.body(null, done.status as 204, headers);
  return c.body(done.body, done.status as ContentfulStatusCode, headers);
}

/** The answer without personal data erased since it was stored (lib/domain/retention/replay.ts); 503 when that cannot be checked. */
async function withoutErased(c: Context<AppEnv>, done: Done): Promise<Done> {
  try {
    return { ...done, body: await withoutErasedData(c.get("deps").database.db, done.body, done.contentType) };
  } catch (error) {
    requestLog(c)!.warn({ err: error }, "could not check a replayed answer for erased data; refusing the replay");
    throw new ApiError("unavailable", "The stored answer cannot be checked right now; retry with the same Idempotency-Key shortly.", {
      retryAfterSeconds: 5,
    });
  }
}

function reused() {
  return new ApiError("idempotency_key_reused", "This Idempotency-Key was used for a different request; use a new key.");
}

/**
 * The answer of a finished record. One that cannot be unsealed (its key is no longer configured,
 * or it was altered) answers 503, as when Redis is down: the service cannot tell what the first
 * request answered, so it neither runs it again nor pretends to know.
 */
function unseal(c: Context<AppEnv>, done: Done | SealedDone): Done {
  if (!("sealed" in done)) return done;
  let answer: Answer;
  try {
    answer = JSON.parse(c.get("deps").cipher.decrypt(done.sealed)) as Answer;
  } catch (error) {
    requestLog(c)!.error({ err: error }, "stored idempotent answer cannot be decrypted; keep earlier keys in ENCRYPTION_KEY_PREVIOUS for 24 h");
    throw new ApiError("unavailable", "The stored answer for this Idempotency-Key cannot be read; retry later.", { retryAfterSeconds: 60 });
  }
  return { state: "done", fingerprint: done.fingerprint, ...answer };
}

/**
 * A stored record from its JSON text (the Redis client answers values unparsed); anything else is
 * ignored. A finished record in plain text, as replicas before sealing wrote them (for 24 h after
 * the upgrade), is read as it is.
 */
function parseRecord(text: string | null): StoredRecord | null {
  if (text === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (!parsed || typeof parsed !== "object") return null;
  const record = parsed as { state?: unknown; fingerprint?: unknown; status?: unknown; body?: unknown };
  if (record.state === "running" && typeof record.fingerprint === "string") return record as Running;
  if (record.state === "done" && typeof record.fingerprint === "string" && typeof (parsed as { sealed?: unknown }).sealed === "string") {
    return { state: "done", fingerprint: record.fingerprint, sealed: (parsed as { sealed: string }).sealed };
  }
  if (record.state === "done" && typeof record.fingerprint === "string" && typeof record.status === "number" && typeof record.body === "string") {
    return record as Done;
  }
  return null;
}
