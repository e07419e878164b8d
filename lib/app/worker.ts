import { Redis } from "@upstash/redis/cloudflare";
import { createApp, type App } from "./app.js";
import { assembleDeps } from "./deps.js";
import { workerConfig, type WorkerConfig } from "./worker-config.js";
import type { AppDeps } from "../domain/deps.js";
import { createEventDatabase, type EventDatabase } from "../adapters/db/event-database.js";
import { fetchFormPost } from "../adapters/fiuu/form-post.js";
import { createConsoleLogger } from "../core/console-logger.js";
import { createNoopMetrics } from "../core/noop-metrics.js";

/**
 * What an isolate keeps between events: configuration, the dependency set (logger, metrics, the
 * Redis REST client, the Fiuu client whose circuit breaker should outlive one request) and the
 * app. The database pool is not among them (lib/adapters/db/event-database.ts): `deps.database`
 * stands for the pool of the event in progress, which `database.run` opens and closes.
 */
export interface WorkerIsolate {
  config: WorkerConfig;
  deps: AppDeps;
  app: App;
  database: EventDatabase;
}

/** Composes the Worker's app from its bindings (read as environment variables), as lib/app/server.ts does for Node. */
export async function composeWorker(source: Record<string, string | undefined>): Promise<WorkerIsolate> {
  const config = workerConfig(source);
  const database = createEventDatabase(config.database);
  const deps = await assembleDeps(config, {
    logger: () => createConsoleLogger(config.log.level),
    metrics: () => createNoopMetrics(),
    database: async () => database.handle,
    redis: async () => ({
      // The Cloudflare build of the same client (no Node-only fetch options), with the options of
      // lib/adapters/redis's REST transport: replies answered unparsed, as on every transport.
      redis: new Redis({
        url: config.redis.url,
        token: config.redis.token,
        enableTelemetry: false,
        retry: { retries: 1 },
        automaticDeserialization: false,
      }) as unknown as AppDeps["redis"],
      close: async () => {},
    }),
    fiuuTransport: () => fetchFormPost(),
  });
  const app = createApp(deps);
  deps.logger.info({ environment: config.environment }, "worker isolate ready");
  return { config, deps, app, database };
}
