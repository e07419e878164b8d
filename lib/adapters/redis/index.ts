import { Redis, type Requester, type UpstashResponse } from "@upstash/redis";
import type { Config } from "../../core/config.js";
import { memoryRequester } from "./memory.js";

export type { Redis };

export interface RedisHandle {
  redis: Redis;
  kind: Config["redis"]["kind"];
  close(): Promise<void>;
}

/**
 * `@upstash/redis` over a Requester (ioredis, the in-process stand-in). Like the REST client
 * below, it answers values as Redis holds them: its default would try JSON.parse on every reply,
 * throwing and catching on each "OK" (3 % of a create's CPU), and turn a stored "123" into 123.
 * Callers parse the JSON they stored. The constructor takes no options in this mode, hence the
 * subclass.
 */
class RawRepliesRedis extends Redis {
  constructor(requester: Requester) {
    super(requester);
    this.opts = { automaticDeserialization: false };
  }
}

/** One command as Redis takes it: its name, then its arguments. */
export type RedisCommand = readonly (string | number)[];

/**
 * Sends the commands in one round trip, as `redis.pipeline()` … `.exec()` does, and answers their
 * replies in order, as Redis sent them; a command Redis refuses throws, naming it. The Pipeline
 * object builds a closure for each of the ~280 commands it offers before it sends anything: about
 * 8 % of all a create allocated. This goes to the client's Requester directly (`client`, a protected
 * member of the Redis class), the same request the Pipeline would make, on every transport.
 */
export async function sendPipeline(redis: Redis, commands: readonly RedisCommand[]): Promise<unknown[]> {
  const { client } = redis as unknown as { client: Requester };
  const replies = (await client.request({ path: ["pipeline"], body: commands })) as unknown as UpstashResponse<unknown>[];
  return replies.map(({ error, result }, i) => {
    if (error) throw new Error(`Redis refused command ${i + 1} (${commands[i]![0]}): ${error}`);
    return result;
  });
}

/**
 * The one Redis API (`@upstash/redis`) over the configured transport: REST, TCP, or in-process.
 * Replies come back as Redis sends them (strings, numbers, arrays), never parsed as JSON.
 */
export async function openRedis(config: Config["redis"]): Promise<RedisHandle> {
  switch (config.kind) {
    case "rest":
      return {
        kind: "rest",
        redis: new Redis({ url: config.url, token: config.token, enableTelemetry: false, retry: { retries: 1 }, automaticDeserialization: false }),
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
      return { kind: "tcp", redis: new RawRepliesRedis(ioredisRequester(client)), close: async () => void client.disconnect() };
    }
    case "memory":
      return { kind: "memory", redis: new RawRepliesRedis(memoryRequester()), close: async () => {} };
  }
}
