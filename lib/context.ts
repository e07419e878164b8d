import type { Redis } from "@upstash/redis";
import type { Config } from "./config.js";
import type { DatabaseHandle } from "./db/client.js";
import type { Logger } from "./logger.js";
import type { Metrics } from "./metrics.js";

/** Everything a handler may use, built once per process (or per test) and handed to createApp. */
export interface AppDeps {
  config: Config;
  database: DatabaseHandle;
  redis: Redis;
  logger: Logger;
  metrics: Metrics;
  /** The current time; tests pass a controllable clock. */
  now: () => Date;
}

/** Hono's environment type: what middleware puts on the context for handlers to read with c.var. */
export interface AppEnv {
  Variables: {
    deps: AppDeps;
    requestId: string;
    log: Logger;
  };
}
