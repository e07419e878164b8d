import type { Requester, UpstashRequest, UpstashResponse } from "@upstash/redis";

type Entry = { value: string; expiresAt?: number };
type Reply = string | number | null | "OK";

/**
 * An in-process stand-in for Redis that speaks the Upstash `Requester` protocol, for the embedded
 * development default and tests only: one process, nothing shared, nothing kept. It implements the
 * handful of commands the service uses; anything else answers an error, as Redis would.
 */
export function memoryRequester(now: () => number = Date.now): Requester {
  const store = new Map<string, Entry>();

  const live = (key: string): Entry | undefined => {
    const entry = store.get(key);
    if (entry?.expiresAt !== undefined && entry.expiresAt <= now()) {
      store.delete(key);
      return undefined;
    }
    return entry;
  };

  const run = (command: unknown[]): Reply => {
    const [rawName, ...args] = command.map((part) => String(part));
    const name = rawName!.toLowerCase();
    const key = args[0]!;
    switch (name) {
      case "ping":
        return "PONG";
      case "get":
        return live(key)?.value ?? null;
      case "set": {
        const flags = args.slice(2).map((a) => a.toLowerCase());
        const existing = live(key);
        // GET answers the value the key held before (nil: none), whether or not this SET took it.
        const previous = flags.includes("get") ? (existing?.value ?? null) : null;
        if (flags.includes("nx") && existing) return previous;
        if (flags.includes("xx") && !existing) return null;
        let expiresAt: number | undefined;
        const ex = flags.indexOf("ex");
        const px = flags.indexOf("px");
        if (ex >= 0) expiresAt = now() + Number(args[ex + 3]) * 1000;
        if (px >= 0) expiresAt = now() + Number(args[px + 3]);
        if (flags.includes("keepttl")) expiresAt = existing?.expiresAt;
        store.set(key, { value: args[1]!, expiresAt });
        return flags.includes("get") ? previous : "OK";
      }
      case "del":
        return args.reduce((n, k) => n + (live(k) && store.delete(k) ? 1 : 0), 0);
      case "exists":
        return args.filter((k) => live(k)).length;
      case "incr":
      case "incrby": {
        const entry = live(key);
        const next = Number(entry?.value ?? 0) + (name === "incr" ? 1 : Number(args[1]));
        if (!Number.isSafeInteger(next)) throw new Error("ERR value is not an integer or out of range");
        store.set(key, { value: String(next), expiresAt: entry?.expiresAt });
        return next;
      }
      case "expire":
      case "pexpire": {
        const entry = live(key);
        if (!entry) return 0;
        if (args[2]?.toLowerCase() === "nx" && entry.expiresAt !== undefined) return 0;
        entry.expiresAt = now() + Number(args[1]) * (name === "expire" ? 1000 : 1);
        return 1;
      }
      case "ttl":
      case "pttl": {
        const entry = live(key);
        if (!entry) return -2;
        if (entry.expiresAt === undefined) return -1;
        const ms = entry.expiresAt - now();
        return name === "ttl" ? Math.ceil(ms / 1000) : ms;
      }
      case "flushdb":
        store.clear();
        return "OK";
      default:
        throw new Error(`ERR unknown command '${name}' (the in-process stand-in implements only what the service uses)`);
    }
  };

  const answer = (command: unknown[]): UpstashResponse<unknown> => {
    try {
      return { result: run(command) };
    } catch (error) {
      return { error: (error as Error).message };
    }
  };

  return {
    async request<TResult>(req: UpstashRequest): Promise<UpstashResponse<TResult>> {
      const route = req.path?.[0];
      if (route === "pipeline" || route === "multi-exec") {
        return (req.body as unknown[][]).map(answer) as unknown as UpstashResponse<TResult>;
      }
      return answer(req.body as unknown[]) as UpstashResponse<TResult>;
    },
  };
}
