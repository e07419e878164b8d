import { Redis } from "@upstash/redis";
import type { Config } from "../config.js";
import { memoryRequester } from "./memory.js";

export type { Redis };

export interface RedisHandle {
  redis: Redis;
  kind: Config["redis"]["kind"];
  close(): Promise<void>;
}

/** The one Redis API (`@upstash/redis`) over the configured transport: REST, TCP, or in-process. */
export async function openRedis(config: Config["redis"]): Promise<RedisHandle> {
  switch (config.kind) {
    case "rest":
      return {
        kind: "rest",
        redis: new Redis({ url: config.url, token: config.token, enableTelemetry: false, retry: { retries: 1 } }),
        close: async () => {},
      };
    case "tcp": {
      const { Redis: IORedis } = await import("ioredis");
      const { ioredisRequester } = await import("./ioredis.js");
      // One pipelined connection serves a replica; commands fail within 2 s rather than queue
      // behind a Redis that is gone, so callers can answer 503 instead of hanging.
      const client = new IORedis({
        host: config.host,
        port: config.port,
        password: config.password,
        db: config.db,
        connectTimeout: 2_000,
        commandTimeout: 2_000,
        maxRetriesPerRequest: 1,
        retryStrategy: (times) => Math.min(times * 200, 2_000),
        lazyConnect: false,
      });
      client.on("error", () => {}); // surfaced through failing commands and /ready, not as crashes
      return { kind: "tcp", redis: new Redis(ioredisRequester(client)), close: async () => void client.disconnect() };
    }
    case "memory":
      return { kind: "memory", redis: new Redis(memoryRequester()), close: async () => {} };
  }
}
