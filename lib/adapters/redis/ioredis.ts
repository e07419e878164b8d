import type { Requester, UpstashRequest, UpstashResponse } from "@upstash/redis";
import type { Redis as IORedis } from "ioredis";

/**
 * An Upstash `Requester` that sends the same commands over Redis's own protocol with ioredis,
 * so code written against `@upstash/redis` runs unchanged against a Redis server in the cluster.
 * A Redis error reply becomes `{ error }` like the REST API's; a connection failure throws.
 */
export function ioredisRequester(client: IORedis): Requester {
  return {
    async request<TResult>(req: UpstashRequest): Promise<UpstashResponse<TResult>> {
      const route = req.path?.[0];
      if (route === "pipeline" || route === "multi-exec") {
        const batch = route === "multi-exec" ? client.multi() : client.pipeline();
        for (const [name, ...args] of req.body as unknown[][]) batch.call(String(name), ...args.map(String));
        const replies = (await batch.exec()) ?? [];
        return replies.map(([error, result]) => (error ? { error: error.message } : { result })) as unknown as UpstashResponse<TResult>;
      }
      const [name, ...args] = req.body as unknown[];
      try {
        return { result: (await client.call(String(name), ...args.map(String))) as TResult };
      } catch (error) {
        if ((error as Error).name === "ReplyError") return { error: (error as Error).message };
        throw error;
      }
    },
  };
}
