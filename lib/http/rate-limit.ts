import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { requestLog, type AppEnv } from "./context.js";
import { ApiError } from "../core/errors.js";
import { clientAddress } from "./client-address.js";
import { sendPipeline } from "../adapters/redis/index.js";

export interface RateLimitOptions {
  /** Names the limit in Redis keys and logs, e.g. "create_payment". */
  name: string;
  /** Requests allowed per key and window, or how to read it from the request's configuration. */
  limit: number | ((c: Context<AppEnv>) => number);
  /** Length of a window in seconds. */
  windowSeconds: number;
  /** Whose budget a request spends: a token's sub, a client address, a payment id; undefined: the request is not limited. */
  key: (c: Context<AppEnv>) => string | undefined;
  /** How long to wait for Redis before letting the request through (default 500 ms). */
  timeoutMs?: number;
}

/** A request's place in its limit's current window: the counter it increments, and what a refusal says. */
export interface LimitWindow {
  /** The window's counter in Redis (INCR, and EXPIRE NX with `ttlSeconds`). */
  redisKey: string;
  ttlSeconds: number;
  limit: number;
  windowSeconds: number;
  /** Seconds left in the window, for Retry-After. */
  retryAfterSeconds: number;
}

/** Checks a rate limit's options once, when the route is built. */
function checkedOptions(options: RateLimitOptions) {
  const { name, windowSeconds } = options;
  if (typeof options.limit === "number" && (!Number.isInteger(options.limit) || options.limit < 1)) {
    throw new Error(`rateLimit ${name}: limit must be a positive integer`);
  }
  if (!Number.isInteger(windowSeconds) || windowSeconds < 1) throw new Error(`rateLimit ${name}: windowSeconds must be a positive integer`);
  return options;
}

/**
 * The window a request counts in, or undefined when its key is undefined (the request is not
 * limited). The window number is part of the key, so a counter whose EXPIRE was lost still cannot
 * outlive its window's budget.
 */
export function limitWindow(c: Context<AppEnv>, options: RateLimitOptions): LimitWindow | undefined {
  const whose = options.key(c);
  if (whose === undefined) return undefined;
  const { name, windowSeconds } = options;
  const nowSeconds = c.get("deps").now().getTime() / 1000;
  const window = Math.floor(nowSeconds / windowSeconds);
  return {
    redisKey: `ratelimit:${name}:${encodeURIComponent(whose)}:${window}`,
    ttlSeconds: windowSeconds + 1,
    limit: typeof options.limit === "function" ? options.limit(c) : options.limit,
    windowSeconds,
    retryAfterSeconds: Math.max(1, Math.ceil((window + 1) * windowSeconds - nowSeconds)),
  };
}

/** Refuses with 429 `rate_limited` (Retry-After: the seconds left in the window) once the window's count exceeds its limit. */
export function enforceLimit(window: LimitWindow, count: number): void {
  if (count <= window.limit) return;
  const { limit, windowSeconds, retryAfterSeconds } = window;
  throw new ApiError("rate_limited", `At most ${limit} requests per ${windowSeconds} s; retry in ${retryAfterSeconds} s.`, { retryAfterSeconds });
}

/**
 * Fixed-window rate limit shared by all replicas through Redis (INCR, and EXPIRE NX, pipelined).
 * Over the limit → 429 `rate_limited` with Retry-After = the seconds left in the window.
 *
 * Fails open: when Redis cannot be reached the request goes through and a warning is logged.
 * Rate limiting protects capacity, not money; idempotency (which fails closed) and the database
 * constraints protect money, so refusing all traffic because a counter store is down would turn
 * a Redis outage into a full outage for nothing. A Redis slower than `timeoutMs` counts as down,
 * so the limiter never adds more than that to a request. A route that also needs an idempotency
 * claim gives these options to idempotency() instead, which counts in the claim's round trip.
 */
export function rateLimit(options: RateLimitOptions) {
  const { name, timeoutMs = 500 } = checkedOptions(options);
  return createMiddleware<AppEnv>(async (c, next) => {
    const window = limitWindow(c, options);
    if (!window) return next();
    let count: number;
    try {
      const { redis } = c.get("deps");
      count = await withTimeout(
        // One round trip: EXPIRE NX sets the expiry only on the window's first hit.
        sendPipeline(redis, [
          ["incr", window.redisKey],
          ["expire", window.redisKey, window.ttlSeconds, "nx"],
        ]).then(([n]) => Number(n)),
        timeoutMs,
      );
    } catch (error) {
      requestLog(c)!.warn({ err: error, limiter: name }, "rate limiter unavailable; letting the request through");
      return next();
    }
    enforceLimit(window, count);
    return next();
  });
}

/**
 * The limit of the pages anyone can reach without a token — `/pay/:id`, `/pay/:id/result` and
 * Fiuu's return URL: RATE_LIMIT_PAGES_PER_MINUTE (120) per client address, one budget shared by
 * the three. A shopper spends about 20 a minute (the result page refreshes every 3 s) and shoppers
 * behind one carrier-grade NAT share an address, hence the margin. A request whose client address
 * is unknown (a runtime without a socket and no TRUSTED_PROXIES) is not limited: one bucket for
 * every shopper would let a single client lock them all out. Fails open like every limit here.
 */
export function publicPageLimit() {
  return rateLimit({ name: "public_page", limit: (c) => c.get("deps").config.pagesPerMinute, windowSeconds: 60, key: clientAddress });
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  work.catch(() => {}); // a late failure after the timeout is not an unhandled rejection
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
