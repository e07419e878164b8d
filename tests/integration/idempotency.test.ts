import { randomBytes, randomUUID } from "node:crypto";
import { zValidator } from "@hono/zod-validator";
import type { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createApp } from "../../lib/app/app.js";
import { authenticate } from "../../lib/http/auth/middleware.js";
import { signToken } from "../../lib/http/auth/tokens.js";
import type { AppEnv } from "../../lib/http/context.js";
import { createFieldCipher, hashSecret, keyIdOf } from "../../lib/core/crypto.js";
import { ApiError } from "../../lib/core/errors.js";
import { idempotency } from "../../lib/http/idempotency.js";
import { openRedis } from "../../lib/adapters/redis/index.js";
import { createTestApp, type TestContext } from "../support/app.js";

const OrderBody = z.object({ item: z.string().min(1), quantity: z.number().int().positive() });

/** How often each test route's handler really ran, by route and request marker. */
const runs = new Map<string, number>();
const ran = (what: string) => runs.set(what, (runs.get(what) ?? 0) + 1).get(what)!;
const timesRun = (what: string) => runs.get(what) ?? 0;

let releaseHung: () => void = () => {};
const hung = new Promise<void>((resolve) => (releaseHung = resolve));

/** Test routes behind the real middleware: each counts its executions under a marker taken from the path. */
function mountRoutes(app: Hono<AppEnv>) {
  const guard = authenticate({ roles: ["service"], clientSecret: true });

  // The validator runs after idempotency() has read the body: both must see it.
  app.post("/test/orders/:marker", guard, idempotency(), zValidator("json", OrderBody), async (c) => {
    const n = ran(c.req.param("marker"));
    await new Promise((r) => setTimeout(r, 50)); // long enough for concurrent requests to overlap
    const principal = c.var.principal;
    const body = c.req.valid("json");
    c.header("Location", `/test/orders/${c.req.param("marker")}/${n}`);
    return c.json({ id: `ord_${randomUUID()}`, run: n, caller: principal.kind === "token" ? principal.sub : "client", ...body }, 201);
  });

  app.post("/test/flaky/:marker", guard, idempotency(), async (c) => {
    const n = ran(c.req.param("marker"));
    if (n === 1) return c.json({ error: "upstream hiccup" }, 502);
    return c.json({ run: n }, 201);
  });

  app.post("/test/throws/:marker", guard, idempotency(), async (c) => {
    const n = ran(c.req.param("marker"));
    if (n === 1) throw new Error("unexpected failure");
    return c.json({ run: n }, 201);
  });

  app.post("/test/conflict/:marker", guard, idempotency(), async (c) => {
    ran(c.req.param("marker"));
    throw new ApiError("invalid_state", "The payment is already paid.");
  });

  app.post("/test/no-content/:marker", guard, idempotency(), async (c) => {
    ran(c.req.param("marker"));
    return c.body(null, 204);
  });

  // Limited to 2 a minute per marker, counted in the claim's round trip.
  app.post(
    "/test/limited/:marker",
    guard,
    idempotency({ rateLimit: { name: "test_limited", limit: 2, windowSeconds: 60, key: (c) => c.req.param("marker") } }),
    async (c) => c.json({ run: ran(c.req.param("marker")) }, 201),
  );

  // The first call hangs (a replica that stopped mid-request); later ones answer at once.
  app.post("/test/hangs/:marker", guard, idempotency({ lockTimeoutMs: 300 }), async (c) => {
    const n = ran(c.req.param("marker"));
    if (n === 1) await hung;
    return c.json({ run: n }, 201);
  });
}

let t: TestContext;
let serviceToken: string;
let otherToken: string;
beforeAll(async () => {
  t = await createTestApp();
  mountRoutes(t.app);
  const secret = t.deps.config.jwtSecret!;
  serviceToken = await signToken(secret, { sub: `shop-${randomUUID()}`, role: "service", ttlSeconds: 600 });
  otherToken = await signToken(secret, { sub: `shop-${randomUUID()}`, role: "service", ttlSeconds: 600 });
});
afterAll(async () => {
  releaseHung();
  await t.close();
});

const order = { item: "kopi", quantity: 2 };

function post(
  path: string,
  options: { key?: string | null; body?: unknown; token?: string; headers?: Record<string, string>; app?: Hono<AppEnv> } = {},
) {
  const headers: Record<string, string> = { "content-type": "application/json", ...options.headers };
  if (!options.headers?.["X-Client-Secret"]) headers.Authorization = `Bearer ${options.token ?? serviceToken}`;
  if (options.key !== null) headers["Idempotency-Key"] = options.key ?? randomUUID();
  const body = options.body === undefined ? order : options.body;
  return (options.app ?? t.app).request(path, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
}

async function expectProblem(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  expect(((await res.json()) as { code: string }).code).toBe(code);
}

const marker = () => `m-${randomUUID()}`;

describe("the Idempotency-Key header", () => {
  it("is required: without it the call is refused with 400 and nothing runs", async () => {
    const m = marker();
    await expectProblem(await post(`/test/orders/${m}`, { key: null }), 400, "idempotency_key_missing");
    expect(timesRun(m)).toBe(0);
  });

  it.each([
    ["empty", ""],
    ["256 characters long", "k".repeat(256)],
    ["carrying a control character", "key\x01one"],
    ["carrying a non-ASCII character", "cl\u00e9"],
  ])("is refused with 400 invalid_request when %s", async (_name, key) => {
    const m = marker();
    await expectProblem(await post(`/test/orders/${m}`, { key }), 400, "invalid_request");
    expect(timesRun(m)).toBe(0);
  });

  it("may be 255 printable characters long", async () => {
    const res = await post(`/test/orders/${marker()}`, { key: `${randomUUID()} ~!@#$%^&*()`.padEnd(255, "x") });
    expect(res.status).toBe(201);
  });
});

describe("a repeated request", () => {
  it("runs the handler once and replays the same status, body, content type and location", async () => {
    const m = marker();
    const key = randomUUID();
    const first = await post(`/test/orders/${m}`, { key });
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotency-replayed")).toBeNull();
    expect(first.headers.get("content-type")).toBe("application/json");
    const firstBody = await first.text();
    expect(JSON.parse(firstBody)).toMatchObject({ run: 1, item: "kopi", quantity: 2 });

    const second = await post(`/test/orders/${m}`, { key });
    expect(second.status).toBe(201);
    expect(second.headers.get("idempotency-replayed")).toBe("true");
    expect(second.headers.get("content-type")).toBe(first.headers.get("content-type"));
    expect(second.headers.get("location")).toBe(first.headers.get("location"));
    expect(await second.text()).toBe(firstBody);
    expect(timesRun(m)).toBe(1);
  });

  it("lets the validator read the body after the fingerprint was taken", async () => {
    const m = marker();
    const res = await post(`/test/orders/${m}`, { body: { item: "teh tarik", quantity: 3 } });
    expect(await res.json()).toMatchObject({ item: "teh tarik", quantity: 3 });
    const invalid = await post(`/test/orders/${m}`, { body: { item: "", quantity: 0 } });
    expect(invalid.status).toBe(400);
  });

  it("with the same key but another body is refused with 422 and does not run", async () => {
    const m = marker();
    const key = randomUUID();
    expect((await post(`/test/orders/${m}`, { key })).status).toBe(201);
    await expectProblem(await post(`/test/orders/${m}`, { key, body: { item: "kopi", quantity: 3 } }), 422, "idempotency_key_reused");
    expect(timesRun(m)).toBe(1);
  });

  it("with the same key on another path is refused with 422", async () => {
    const key = randomUUID();
    expect((await post(`/test/orders/${marker()}`, { key })).status).toBe(201);
    await expectProblem(await post(`/test/orders/${marker()}`, { key }), 422, "idempotency_key_reused");
  });

  it("replays a stored 4xx answer rather than running again", async () => {
    const m = marker();
    const key = randomUUID();
    await expectProblem(await post(`/test/conflict/${m}`, { key }), 409, "invalid_state");
    const again = await post(`/test/conflict/${m}`, { key });
    expect(again.headers.get("idempotency-replayed")).toBe("true");
    await expectProblem(again, 409, "invalid_state");
    expect(timesRun(m)).toBe(1);
  });

  it("replays an answer without a body", async () => {
    const m = marker();
    const key = randomUUID();
    expect((await post(`/test/no-content/${m}`, { key })).status).toBe(204);
    const again = await post(`/test/no-content/${m}`, { key });
    expect(again.status).toBe(204);
    expect(again.headers.get("idempotency-replayed")).toBe("true");
    expect(timesRun(m)).toBe(1);
  });

  it("after a 5xx answer is not replayed: the retry runs the handler again", async () => {
    const m = marker();
    const key = randomUUID();
    expect((await post(`/test/flaky/${m}`, { key })).status).toBe(502);
    const retry = await post(`/test/flaky/${m}`, { key });
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotency-replayed")).toBeNull();
    expect(await retry.json()).toEqual({ run: 2 });
    expect(timesRun(m)).toBe(2);
  });

  it("after the handler threw is not replayed: the retry runs the handler again", async () => {
    const m = marker();
    const key = randomUUID();
    await expectProblem(await post(`/test/throws/${m}`, { key }), 500, "internal_error");
    const retry = await post(`/test/throws/${m}`, { key });
    expect(retry.status).toBe(201);
    expect(timesRun(m)).toBe(2);
  });
});

describe("with a rate limit counted in the claim", () => {
  it("refuses the request over the limit with 429 and keeps nothing under its key", async () => {
    const sub = `shop-limited-${randomUUID()}`;
    const token = await signToken(t.deps.config.jwtSecret!, { sub, role: "service", ttlSeconds: 600 });
    const m = marker();
    const key = randomUUID();
    expect((await post(`/test/limited/${m}`, { key, token })).status).toBe(201);
    // A replay spends the budget too, as the limit alone counted it before the claim.
    const replay = await post(`/test/limited/${m}`, { key, token });
    expect([replay.status, replay.headers.get("idempotency-replayed")]).toEqual([201, "true"]);
    const refused = await post(`/test/limited/${m}`, { key: "refused-key", token });
    await expectProblem(refused, 429, "rate_limited");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(timesRun(m)).toBe(1);
    // Neither the refused request's claim nor its 429 is held: the key is free for a retry.
    expect(await t.deps.redis.get(`idempotency:sub:${encodeURIComponent(sub)}:refused-key`)).toBeNull();
    expect(await t.deps.redis.get(`idempotency:sub:${encodeURIComponent(sub)}:${key}`)).not.toBeNull();
  });

  it("counts a request refused for its missing or malformed key too", async () => {
    const m = marker();
    await expectProblem(await post(`/test/limited/${m}`, { key: null }), 400, "idempotency_key_missing");
    await expectProblem(await post(`/test/limited/${m}`, { key: "" }), 400, "invalid_request");
    await expectProblem(await post(`/test/limited/${m}`), 429, "rate_limited");
    expect(timesRun(m)).toBe(0);
  });
});

describe("concurrent requests", () => {
  it("20 identical requests at once run the handler exactly once; the others replay or are told it is in use", async () => {
    const m = marker();
    const key = randomUUID();
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(`/test/orders/${m}`, { key })));
    expect(timesRun(m)).toBe(1);
    const firsts = answers.filter((r) => r.status === 201 && r.headers.get("idempotency-replayed") === null);
    const replays = answers.filter((r) => r.status === 201 && r.headers.get("idempotency-replayed") === "true");
    const inUse = answers.filter((r) => r.status === 409);
    expect(firsts).toHaveLength(1);
    expect(replays.length + inUse.length).toBe(19);
    expect(inUse.length).toBeGreaterThan(0); // the handler takes 50 ms, so some must have overlapped it
    for (const res of inUse) {
      expect(res.headers.get("retry-after")).toBe("1");
      expect(((await res.json()) as { code: string }).code).toBe("idempotency_key_in_use");
    }
    const body = await firsts[0]!.text();
    for (const res of replays) expect(await res.text()).toBe(body);
  });
});

describe("scope", () => {
  it("keeps different callers' keys apart", async () => {
    const m = marker();
    const key = randomUUID();
    const mine = await post(`/test/orders/${m}`, { key });
    const theirs = await post(`/test/orders/${m}`, { key, token: otherToken });
    expect(mine.status).toBe(201);
    expect(theirs.status).toBe(201);
    expect(theirs.headers.get("idempotency-replayed")).toBeNull();
    expect(timesRun(m)).toBe(2);
    // Within the other caller's own scope the key is now taken.
    expect((await post(`/test/orders/${marker()}`, { key, token: otherToken, body: { item: "roti", quantity: 1 } })).status).toBe(422);
  });

  it("scopes a client secret's keys to that secret", async () => {
    const m = marker();
    const key = randomUUID();
    const asClient = (secret: string) => post(`/test/orders/${m}`, { key, headers: { "X-Client-Secret": secret } });
    expect((await asClient("cs_one")).status).toBe(201);
    expect((await asClient("cs_one")).headers.get("idempotency-replayed")).toBe("true");
    expect((await asClient("cs_two")).headers.get("idempotency-replayed")).toBeNull();
    expect((await post(`/test/orders/${m}`, { key })).headers.get("idempotency-replayed")).toBeNull();
    expect(timesRun(m)).toBe(3);
  });
});

describe("a claim left by a request that never finished", () => {
  it("answers 409 while it holds and frees itself after lockTimeoutMs", async () => {
    const m = marker();
    const key = randomUUID();
    void post(`/test/hangs/${m}`, { key }); // never answers until the suite ends
    await new Promise((r) => setTimeout(r, 50));
    await expectProblem(await post(`/test/hangs/${m}`, { key }), 409, "idempotency_key_in_use");
    expect(timesRun(m)).toBe(1);
    await new Promise((r) => setTimeout(r, 400));
    const retry = await post(`/test/hangs/${m}`, { key });
    expect(retry.status).toBe(201);
    expect(await retry.json()).toEqual({ run: 2 });
    const replay = await post(`/test/hangs/${m}`, { key });
    expect(replay.headers.get("idempotency-replayed")).toBe("true");
    expect(timesRun(m)).toBe(2);
  });
});

describe("the stored answer", () => {
  const sub = `shop-sealed-${randomUUID()}`;
  const token = () => signToken(t.deps.config.jwtSecret!, { sub, role: "service", ttlSeconds: 600 });
  const redisKey = (key: string) => `idempotency:sub:${encodeURIComponent(sub)}:${key}`;
  const stored = async (key: string) => JSON.parse((await t.deps.redis.get<string>(redisKey(key)))!) as Record<string, unknown>;
  /** The app on the same Redis with another field cipher, as after a deploy with other keys. */
  const withCipher = (cipher: ReturnType<typeof createFieldCipher>) => {
    const app = createApp({ ...t.deps, cipher });
    mountRoutes(app);
    return app;
  };
  const currentKey = () => t.deps.config.encryptionKey!;

  it("is kept sealed with the field cipher (v1.<keyId>.…): Redis holds no byte of the answer in clear", async () => {
    const m = marker();
    const key = randomUUID();
    const item = `secret-item-${randomBytes(6).toString("hex")}`;
    const first = await post(`/test/orders/${m}`, { key, token: await token(), body: { item, quantity: 1 } });
    expect(first.status).toBe(201);
    const record = await stored(key);
    expect(Object.keys(record).sort()).toEqual(["fingerprint", "sealed", "state"]);
    expect(record.state).toBe("done");
    expect(record.sealed).toMatch(new RegExp(`^v1\\.${keyIdOf(currentKey())}\\.[\\w-]+\\.[\\w-]+\\.[\\w-]+$`));
    const raw = (await t.deps.redis.get<string>(redisKey(key)))!;
    expect(raw).not.toContain(item);
    expect(raw).not.toContain(Buffer.from(item).toString("base64").slice(0, 12));
    expect(JSON.parse(t.deps.cipher.decrypt(record.sealed as string))).toMatchObject({
      status: 201,
      contentType: "application/json",
      body: await first.text(),
    });
  });

  it("replays after ENCRYPTION_KEY rotates, read with ENCRYPTION_KEY_PREVIOUS; new answers are sealed with the new key", async () => {
    const m = marker();
    const key = randomUUID();
    const first = await post(`/test/orders/${m}`, { key, token: await token() });
    const body = await first.text();
    const newKey = randomBytes(32);
    const rotated = withCipher(createFieldCipher(newKey, [currentKey()]));
    const replay = await post(`/test/orders/${m}`, { key, token: await token(), app: rotated });
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotency-replayed")).toBe("true");
    expect(await replay.text()).toBe(body);
    expect(timesRun(m)).toBe(1);

    const fresh = randomUUID();
    expect((await post(`/test/orders/${marker()}`, { key: fresh, token: await token(), app: rotated })).status).toBe(201);
    expect((await stored(fresh)).sealed).toMatch(new RegExp(`^v1\\.${keyIdOf(newKey)}\\.`));
  });

  it("answers 503 and runs nothing when it was sealed with a key no longer configured", async () => {
    const m = marker();
    const key = randomUUID();
    expect((await post(`/test/orders/${m}`, { key, token: await token() })).status).toBe(201);
    const forgotten = withCipher(createFieldCipher(randomBytes(32)));
    const errorsBefore = t.logs.lines.filter((l) => l.level === 50 || l.level === "error").length;
    const res = await post(`/test/orders/${m}`, { key, token: await token(), app: forgotten });
    await expectProblem(res, 503, "unavailable");
    expect(timesRun(m)).toBe(1);
    expect(t.logs.lines.filter((l) => l.level === 50 || l.level === "error").length).toBe(errorsBefore + 1);
    // The same key with another request is still refused as reused, without reading the answer.
    await expectProblem(
      await post(`/test/orders/${m}`, { key, token: await token(), app: forgotten, body: { item: "teh", quantity: 9 } }),
      422,
      "idempotency_key_reused",
    );
  });

  it("replays a record in plain text, as replicas before sealing wrote them", async () => {
    const m = marker();
    const key = randomUUID();
    const fingerprint = hashSecret(`POST\n/test/orders/${m}\n${JSON.stringify(order)}`);
    await t.deps.redis.set(
      redisKey(key),
      { state: "done", fingerprint, status: 201, body: '{"legacy":true}', contentType: "application/json" },
      { ex: 60 },
    );
    const res = await post(`/test/orders/${m}`, { key, token: await token() });
    expect(res.status).toBe(201);
    expect(res.headers.get("idempotency-replayed")).toBe("true");
    expect(await res.json()).toEqual({ legacy: true });
    expect(timesRun(m)).toBe(0);
  });
});

describe("when Redis is unreachable", () => {
  it("answers 503 unavailable with Retry-After and does not run the handler", async () => {
    const dead = await openRedis({ kind: "tcp", host: "127.0.0.1", port: 1, db: 0, maxConnections: 1 });
    try {
      const app = createApp({ ...t.deps, redis: dead.redis });
      mountRoutes(app);
      const m = marker();
      const res = await post(`/test/orders/${m}`, { app });
      await expectProblem(res, 503, "unavailable");
      expect(res.headers.get("retry-after")).toBe("5");
      expect(timesRun(m)).toBe(0);
    } finally {
      await dead.close();
    }
  });
});
