import { ConfigError, type Config } from "../core/config.js";
import type { AppDeps } from "../domain/deps.js";
import { openDatabase, type DatabaseHandle } from "../adapters/db/client.js";
import { migrateDatabase } from "../adapters/db/migrate.js";
import { logDatabaseAtStart } from "../adapters/db/startup.js";
import { assembleDeps } from "./deps-core.js";
import type { FormPost } from "../adapters/fiuu/form-post.js";
import { createLogger, type Logger } from "../core/logger.js";
import { createMetrics } from "../core/metrics.js";
import { openRedis, type RedisHandle } from "../adapters/redis/index.js";

export interface OwnedDeps extends AppDeps {
  /** Closes what buildDeps opened: the database pool and the Redis connection. */
  close(): Promise<void>;
}

/**
 * Builds the dependency set from configuration. The embedded database is migrated here (it is
 * this process's own); a real Postgres is migrated by `migrate up` before the pods start.
 */
export async function buildDeps(
  config: Config,
  options: {
    logger?: Logger;
    database?: DatabaseHandle;
    redis?: RedisHandle;
    migrate?: boolean;
    /** How the Fiuu client reaches Fiuu; default the network. Tests route it to a sandbox app. */
    fiuuFetch?: (request: Request) => Promise<Response>;
    /** The network transport when no fiuuFetch is given; default fetch. The Node server passes node:http's. */
    fiuuPost?: FormPost;
  } = {},
): Promise<OwnedDeps> {
  const logger = options.logger ?? (await createLogger(config.log));
  let database: DatabaseHandle;
  try {
    database = options.database ?? (await openDatabase(config.database));
  } catch (error) {
    // A TLS setting that cannot mean what it says (lib/adapters/db/tls.ts): said in the log before exiting.
    if (error instanceof ConfigError) logger.fatal({ problems: error.problems }, error.message);
    throw error;
  }
  // Said in the first lines of the log: connected as whom, over what TLS, or why not.
  if (!options.database && database.kind === "postgres") await logDatabaseAtStart(database, logger, config.health.timeoutMs);
  if (options.migrate ?? database.kind === "embedded") await migrateDatabase(database);
  const redis = options.redis ?? (await openRedis(config.redis));
  const metrics = createMetrics();
  return {
    ...assembleDeps(config, { database, redis: redis.redis, logger, metrics, fiuuFetch: options.fiuuFetch, fiuuPost: options.fiuuPost }),
    close: async () => {
      await Promise.allSettled([database.close(), redis.close()]);
    },
  };
}
