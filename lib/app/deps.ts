import type { Config } from "../core/config.js";
import type { AppDeps } from "../domain/deps.js";
import { createFieldCipher } from "../core/crypto.js";
import type { DatabaseHandle } from "../adapters/db/client.js";
import { createFiuuClient } from "../adapters/fiuu/client.js";
import type { FormPost } from "../adapters/fiuu/form-post.js";
import type { RedisHandle } from "../adapters/redis/index.js";
import type { Logger } from "../core/logger.js";
import type { Metrics } from "../core/metrics.js";
import { createTokenVerifier } from "../http/auth/tokens.js";
import { createWebhookConnections } from "../domain/webhooks/send.js";

/**
 * How one runtime opens the parts of the dependency set: the Node server's (lib/app/node-openers.ts:
 * PGlite or postgres.js, ioredis, pino, prom-client) or the Worker's (lib/app/worker.ts: a database
 * per event, Redis over REST, console logs, no metrics). Opened in this order; each may use the logger.
 */
export interface Openers {
  logger(config: Config): Logger | Promise<Logger>;
  metrics(config: Config): Metrics;
  database(config: Config, logger: Logger): Promise<DatabaseHandle>;
  redis(config: Config): Promise<Pick<RedisHandle, "redis" | "close">>;
  /** How the Fiuu client reaches Fiuu: the network (fetch, or the Node server's pool), or the local sandbox's app in-process. */
  fiuuTransport(config: Config): FormPost;
}

export interface OwnedDeps extends AppDeps {
  /** Closes what the assembly opened: the database pool, the Redis connection, kept-alive connections. */
  close(): Promise<void>;
}

/**
 * Assembles the dependency set from the parts a runtime's openers open. It imports nothing tied to
 * a runtime (no PGlite, ioredis, pino, prom-client), so the Node server and the functions entries
 * (workerd, Vercel, Lambda) compose the same AppDeps. What the set remembers (verified tokens,
 * connections to Fiuu and to webhook receivers) is created here, so two apps in a process share none.
 */
export async function assembleDeps(config: Config, openers: Openers): Promise<OwnedDeps> {
  const logger = await openers.logger(config);
  const database = await openers.database(config, logger);
  const redis = await openers.redis(config);
  const metrics = openers.metrics(config);
  const fiuuTransport = openers.fiuuTransport(config);
  const webhookConnections = createWebhookConnections();
  return {
    config,
    database,
    redis: redis.redis,
    logger,
    metrics,
    fiuu: createFiuuClient({
      fiuu: config.fiuu,
      metrics,
      logger,
      transport: fiuuTransport,
      breaker: { consecutiveFailures: config.fiuu.breaker.threshold, halfOpenAfterMs: config.fiuu.breaker.resetMs },
    }),
    cipher: createFieldCipher(config.encryptionKey, config.previousEncryptionKeys),
    verifyToken: createTokenVerifier(),
    webhookConnections,
    now: () => new Date(),
    close: async () => {
      webhookConnections.close();
      await Promise.allSettled([database.close(), redis.close(), fiuuTransport.close?.()]);
    },
  };
}
