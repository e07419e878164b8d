import type { Redis } from "@upstash/redis";
import type { Context } from "hono";
import type { Config } from "../core/config.js";
import type { FiuuClient } from "../adapters/fiuu/client.js";
import type { DatabaseHandle } from "../adapters/db/client.js";
import type { Logger } from "../core/logger.js";
import type { Metrics } from "../core/metrics.js";

/** Everything a handler may use, built once per process (or per test) and handed to createApp. */
export interface AppDeps {
  config: Config;
  database: DatabaseHandle;
  redis: Redis;
  logger: Logger;
  metrics: Metrics;
  /** Encrypts customer details at rest (AES-256-GCM with a key id, so keys can rotate). */
  cipher: { encrypt(plain: string): string; decrypt(stored: string): string };
  /** Fiuu's server APIs: requery, IPN echo, refunds (with timeout, retries and a circuit breaker). */
  fiuu: FiuuClient;
  /** The current time; tests pass a controllable clock. */
  now: () => Date;
}

/** Who is calling: a bearer of a JWT (shop backend, operator, scheduler) or a checkout page holding a payment's client secret. */
export type Principal =
  | { kind: "token"; sub: string; role: "service" | "admin" | "system" }
  | { kind: "client"; secret: string };

/** Hono's environment type: what middleware puts on the context for handlers to read with c.get() (not c.var, which copies every variable on each read). */
export interface AppEnv {
  Variables: {
    deps: AppDeps;
    requestId: string;
    /** The request's logger, once made: read it with requestLog(c). */
    log: Logger;
    principal: Principal;
  };
}

/**
 * The request's logger (a pino child binding its request id), made on first use: pino redacts a
 * child's bindings when it makes one, and most requests log nothing but their closing line, which
 * the root logger writes with the id. Undefined before the app's first middleware has run.
 */
export function requestLog(c: Context<AppEnv>): Logger | undefined {
  let log = c.get("log");
  if (log === undefined) {
    const deps = c.get("deps");
    if (deps === undefined) return undefined;
    log = deps.logger.child({ request_id: c.get("requestId") });
    c.set("log", log);
  }
  return log;
}
