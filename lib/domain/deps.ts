import type { Redis } from "@upstash/redis";
import type { DatabaseHandle } from "../adapters/db/client.js";
import type { FiuuClient } from "../adapters/fiuu/client.js";
import type { Config } from "../core/config.js";
import type { Logger } from "../core/logger.js";
import type { Metrics } from "../core/metrics.js";
import type { WebhookConnections } from "./webhooks/send.js";

// Types only: what the domain, operations and HTTP layers are handed. Assembled by lib/app/deps.ts.

/** Everything a handler or job may use, built once per process (or per test) and handed to createApp. */
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
  /**
   * Verifies a bearer token's HS256 signature (lib/http/auth/tokens.ts), remembering tokens that
   * verified: this app's memory, shared with no other app in the process.
   */
  verifyToken(token: string, secret: string): Readonly<Record<string, unknown>>;
  /** This app's kept-alive connections to webhook receivers (Node). */
  webhookConnections: WebhookConnections;
  /** The current time; tests pass a controllable clock. */
  now: () => Date;
}

/** Who is calling: a bearer of a JWT (shop backend, operator, scheduler) or a checkout page holding a payment's client secret. */
export type Principal = { kind: "token"; sub: string; role: "service" | "admin" | "system" } | { kind: "client"; secret: string };
