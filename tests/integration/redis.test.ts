import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { openRedis, sendPipeline, type RedisHandle } from "../../lib/adapters/redis/index.js";

// The same behaviours through each transport this machine can offer: the in-process stand-in
// always, and the TCP transport over ioredis when TEST_REDIS_HOST names a real server.
const transports: [string, () => Promise<RedisHandle>][] = [["in-process stand-in", () => openRedis({ kind: "memory" })]];
if (process.env.TEST_REDIS_HOST) {
  transports.push([
    "ioredis over TCP",
    () => openRedis({ kind: "tcp", host: process.env.TEST_REDIS_HOST!, port: Number(process.env.TEST_REDIS_PORT ?? 6379), db: 0, maxConnections: 1 }),
  ]);
}

describe.each(transports)("Redis through @upstash/redis: %s", (_name, open) => {
  const handles: RedisHandle[] = [];
  const connect = async () => {
    const handle = await open();
    handles.push(handle);
    return handle.redis;
  };
  afterAll(async () => {
    for (const h of handles) await h.close();
  });
  const key = () => `test:${randomUUID()}`;

  it("answers PING", async () => {
    expect(await (await connect()).ping()).toBe("PONG");
  });

  it("sets only when absent with NX and expires with PX", async () => {
    const redis = await connect();
    const k = key();
    expect(await redis.set(k, "first", { nx: true, px: 300 })).toBe("OK");
    expect(await redis.set(k, "second", { nx: true, px: 300 })).toBeNull();
    expect(await redis.get(k)).toBe("first");
    const ttl = await redis.pttl(k);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(300);
    await new Promise((r) => setTimeout(r, 400));
    expect(await redis.get(k)).toBeNull();
  });

  it("with NX and GET, takes an absent key answering nil, and answers a held key's value without changing it", async () => {
    const redis = await connect();
    const k = key();
    expect(await redis.set(k, "first", { nx: true, get: true, px: 300 })).toBeNull();
    expect(await redis.set(k, "second", { nx: true, get: true, px: 300 })).toBe("first");
    expect(await redis.get(k)).toBe("first");
    expect(await redis.pttl(k)).toBeGreaterThan(0);
  });

  it("stores objects as JSON, answers values unparsed, and counts with INCR", async () => {
    const redis = await connect();
    const k = key();
    await redis.set(k, { status: 201, body: { id: "pay_1" } });
    expect(await redis.get(k)).toBe('{"status":201,"body":{"id":"pay_1"}}');
    const digits = key();
    await redis.set(digits, "0123");
    expect(await redis.get(digits)).toBe("0123");
    await redis.del(digits);
    const counter = key();
    expect(await redis.incr(counter)).toBe(1);
    expect(await redis.incr(counter)).toBe(2);
    expect(await redis.del(counter, k)).toBe(2);
  });

  it("runs a pipeline and reports a command error without losing the others", async () => {
    const redis = await connect();
    const k = key();
    const results = await redis.pipeline().set(k, "1").incr(k).get(k).exec();
    expect(results).toEqual(["OK", 2, "2"]);
    await redis.set(k, "not a number");
    await expect(redis.incr(k)).rejects.toThrow(/not an integer|out of range/);
  });

  it("sends commands with sendPipeline, answering each reply as Redis sent it, and throws naming a refused command", async () => {
    const redis = await connect();
    const k = key();
    const replies = await sendPipeline(redis, [
      ["incr", k],
      ["expire", k, 60, "nx"],
      ["expire", k, 90, "nx"],
      ["set", `${k}:claim`, '{"state":"running"}', "nx", "get", "px", 5_000],
      ["set", `${k}:claim`, "second", "nx", "get", "px", 5_000],
    ]);
    expect(replies).toEqual([1, 1, 0, null, '{"state":"running"}']);
    expect(await redis.get(`${k}:claim`)).toBe('{"state":"running"}');
    expect(await redis.ttl(k)).toBeGreaterThan(55);
    await redis.set(k, "not a number");
    await expect(
      sendPipeline(redis, [
        ["get", k],
        ["incr", k],
      ]),
    ).rejects.toThrow(/command 2 \(incr\).*(not an integer|out of range)/);
  });
});

describe("Redis over TCP when the server is gone", () => {
  it("fails a command quickly instead of hanging", async () => {
    const handle = await openRedis({ kind: "tcp", host: "127.0.0.1", port: 1, db: 0, maxConnections: 1 });
    const started = Date.now();
    await expect(handle.redis.ping()).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
    await handle.close();
  });
});
