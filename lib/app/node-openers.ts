import { ConfigError, type Config } from "../core/config.js";
import { openDatabase, type DatabaseHandle } from "../adapters/db/client.js";
import { migrateDatabase } from "../adapters/db/migrate.js";
import { logDatabaseAtStart } from "../adapters/db/startup.js";
import { fetchFormPost, type FormPost } from "../adapters/fiuu/form-post.js";
import { openRedis, type RedisHandle } from "../adapters/redis/index.js";
import { createLogger, type Logger } from "../core/logger.js";
import { createMetrics } from "../core/metrics.js";
import type { Openers } from "./deps.js";

/**
 * The openers of a Node process (the server, Lambda, Vercel): pino, prom-client, the configured
 * database (PGlite or postgres.js) and Redis (TCP, REST or in-process), Fiuu over fetch. A part
 * given is used as it is (tests pass their own); the embedded database is migrated here (it is
 * this process's own), a real Postgres by `migrate up` before the pods start.
 */
export function nodeOpeners(
  given: { logger?: Logger; database?: DatabaseHandle; redis?: RedisHandle; migrate?: boolean; fiuuTransport?: FormPost } = {},
): Openers {
  return {
    logger: (config) => given.logger ?? createLogger(config.log),
    metrics: () => createMetrics(),
    database: async (config, logger) => {
      let database: DatabaseHandle;
      try {
        database = given.database ?? (await openDatabase(config.database));
      } catch (error) {
        // A TLS setting that cannot mean what it says (lib/adapters/db/tls.ts): said in the log before exiting.
        if (error instanceof ConfigError) logger.fatal({ problems: error.problems }, error.message);
        throw error;
      }
      // Said in the first lines of the log: connected as whom, over what TLS, or why not.
      if (!given.database && database.kind === "postgres") await logDatabaseAtStart(database, logger, config.health.timeoutMs);
      if (given.migrate ?? database.kind === "embedded") await migrateDatabase(database);
      return database;
    },
    redis: async (config: Config) => given.redis ?? (await openRedis(config.redis)),
    fiuuTransport: () => given.fiuuTransport ?? fetchFormPost(),
  };
}
