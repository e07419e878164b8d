import type { Redis } from "@upstash/redis";
import type { Config } from "../core/config.js";
import type { AppDeps } from "../domain/deps.js";
import { createFieldCipher } from "../core/crypto.js";
import type { DatabaseHandle } from "../adapters/db/client.js";
import { createFiuuClient } from "../adapters/fiuu/client.js";
import type { Logger } from "../core/logger.js";
import type { Metrics } from "../core/metrics.js";
import type { FormPost } from "../adapters/fiuu/form-post.js";

/**
 * Assembles the dependency set from parts the caller opened. It imports nothing tied to a
 * runtime (no PGlite, ioredis, pino, prom-client), so the Node server and the functions entries
 * (workerd, Vercel, Lambda) compose the same AppDeps.
 */
export function assembleDeps(
  config: Config,
  parts: {
    database: DatabaseHandle;
    redis: Redis;
    logger: Logger;
    metrics: Metrics;
    /** How the Fiuu client reaches Fiuu; default the network. */
    fiuuFetch?: (request: Request) => Promise<Response>;
    /** A cheaper way to the network than fetch, where the runtime has one (lib/adapters/fiuu/node-form-post.ts). */
    fiuuPost?: FormPost;
  },
): AppDeps {
  const { database, redis, logger, metrics } = parts;
  return {
    config,
    database,
    redis,
    logger,
    metrics,
    fiuu: createFiuuClient({
      fiuu: config.fiuu,
      metrics,
      logger,
      fetch: parts.fiuuFetch,
      post: parts.fiuuPost,
      breaker: { consecutiveFailures: config.fiuu.breaker.threshold, halfOpenAfterMs: config.fiuu.breaker.resetMs },
    }),
    cipher: createFieldCipher(requireKey(config), config.previousEncryptionKeys),
    now: () => new Date(),
  };
}

function requireKey(config: Config): Buffer {
  if (!config.encryptionKey) throw new Error("ENCRYPTION_KEY is not set (withDevSecrets fills it outside production)");
  return config.encryptionKey;
}
