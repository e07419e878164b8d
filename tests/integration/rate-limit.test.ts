import { randomUUID } from "node:crypto";
import type { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../lib/app/app.js";
import type { AppEnv } from "../../lib/http/context.js";
import { openRedis } from "../../lib/adapters/redis/index.js";
import { rateLimit } from "../../lib/http/rate-limit.js";
import { createTestApp, type TestContext } from "../support/app.js";

// A clock the tests move: windows are fixed and numbered from the epoch, so a test can stand at a
// known second of a window and step into the next one.
const windowSeconds = 60;
let clock = new Date();
const at = (secondOfWindow: number) => {
  const start = Math.floor(Date.now() / 1000 / windowSeconds) * windowSeconds;
  clock = new Date((start + secondOfWindow) * 1000);
};

/** Limit 3 per minute per X-Caller header; every run gets its own limiter name so real Redis keys never collide. */
function mountRoutes(app: Hono<AppEnv>, name: string) {
  app.get("/test/limited", rateLimit({ name, limit: 3, windowSeconds, key: (c) => c.req.header("X-Caller") ?? "anonymous" }), (c) =>
    c.json({ ok: true }),
  );
  // A key of undefined (a client whose address is unknown, for the page limit) is not limited at all.
  app.get("/test/limited-if-known", rateLimit({ name: `${name}_known`, limit: 1, windowSeconds, key: (c) => c.req.header("X-Caller") }), (c) =>
    c.json({ ok: true }),
  );
}

let t: TestContext;
let limiterName: string;
beforeAll(async () => {
  t = await createTestApp({ now: () => clock });
  limiterName = `test_${randomUUID()}`;
  mountRoutes(t.app, limiterName);
});
afterAll(() => t.close());

const call = (caller: string, app: Hono<AppEnv> = t.app) => app.request("/test/limited", { headers: { "X-Caller": caller } });

describe("fixed-window rate limit", () => {
  it("lets `limit` requests through and answers the next with 429 and the seconds left in the window", async () => {
    at(15);
    const caller = randomUUID();
    for (let i = 0; i < 3; i++) expect((await call(caller)).status).toBe(200);
    const refused = await call(caller);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("content-type")).toBe("application/problem+json");
    expect(refused.headers.get("retry-after")).toBe("45");
    expect(((await refused.json()) as { code: string }).code).toBe("rate_limited");
  });

  it("keeps counting refused requests within the window, with Retry-After shrinking", async () => {
    at(0);
    const caller = randomUUID();
    for (let i = 0; i < 4; i++) await call(caller);
    at(50);
    const refused = await call(caller);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("10");
  });

  it("starts afresh in the next window", async () => {
    at(30);
    const caller = randomUUID();
    for (let i = 0; i < 3; i++) await call(caller);
    expect((await call(caller)).status).toBe(429);
    at(windowSeconds + 1);
    expect((await call(caller)).status).toBe(200);
  });

  it("counts each key on its own", async () => {
    at(10);
    const [a, b] = [randomUUID(), randomUUID()];
    for (let i = 0; i < 3; i++) expect((await call(a)).status).toBe(200);
    expect((await call(a)).status).toBe(429);
    for (let i = 0; i < 3; i++) expect((await call(b)).status).toBe(200);
    expect((await call(b)).status).toBe(429);
  });

  it("counts requests that arrive at once exactly", async () => {
    at(5);
    const caller = randomUUID();
    const answers = await Promise.all(Array.from({ length: 10 }, () => call(caller)));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(3);
    expect(answers.filter((r) => r.status === 429)).toHaveLength(7);
  });

  it("does not count, nor touch Redis for, a request whose key is undefined", async () => {
    at(25);
    for (let i = 0; i < 5; i++) expect((await t.app.request("/test/limited-if-known")).status).toBe(200);
    const caller = randomUUID();
    expect((await t.app.request("/test/limited-if-known", { headers: { "X-Caller": caller } })).status).toBe(200);
    expect((await t.app.request("/test/limited-if-known", { headers: { "X-Caller": caller } })).status).toBe(429);
    const window = Math.floor(clock.getTime() / 1000 / windowSeconds);
    expect(await t.deps.redis.exists(`ratelimit:${limiterName}_known:undefined:${window}`, `ratelimit:${limiterName}_known::${window}`)).toBe(0);
  });

  it("sets an expiry on its counters so they do not pile up in Redis", async () => {
    at(20);
    const caller = randomUUID();
    await call(caller);
    const window = Math.floor(clock.getTime() / 1000 / windowSeconds);
    const ttl = await t.deps.redis.ttl(`ratelimit:${limiterName}:${caller}:${window}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(windowSeconds + 1);
  });
});

describe("when Redis is unreachable", () => {
  it("lets requests through (fails open) and logs a warning", async () => {
    const dead = await openRedis({ kind: "tcp", host: "127.0.0.1", port: 1, db: 0, maxConnections: 1 });
    try {
      const app = createApp({ ...t.deps, redis: dead.redis });
      mountRoutes(app, limiterName);
      at(0);
      const caller = randomUUID();
      const started = Date.now();
      for (let i = 0; i < 4; i++) expect((await call(caller, app)).status).toBe(200);
      expect(Date.now() - started).toBeLessThan(4 * 900); // each waits at most the limiter's 500 ms budget
      const warnings = t.logs.lines.filter((l) => l.msg === "rate limiter unavailable; letting the request through");
      expect(warnings.length).toBeGreaterThanOrEqual(4);
      expect(warnings[0]).toMatchObject({ level: "warn", limiter: limiterName });
    } finally {
      await dead.close();
    }
  });
});
