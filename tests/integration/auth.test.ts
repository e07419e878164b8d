import { randomBytes } from "node:crypto";
import { sign } from "hono/jwt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authenticate, requireTokenSub } from "../../lib/http/auth/middleware.js";
import { signToken } from "../../lib/http/auth/tokens.js";
import { createTestApp, type TestContext } from "../support/app.js";

let t: TestContext;
let secret: string;
beforeAll(async () => {
  t = await createTestApp();
  secret = t.deps.config.jwtSecret!;
  // Small routes guarded the way the real ones are, answering who the middleware let in.
  t.app.get("/test/service-only", authenticate({ roles: ["service"] }), (c) => c.json(c.var.principal));
  t.app.get("/test/service-or-admin", authenticate({ roles: ["service", "admin"] }), (c) => c.json(c.var.principal));
  t.app.get("/test/checkout", authenticate({ roles: ["service"], clientSecret: true }), (c) => c.json(c.var.principal));
  t.app.get("/test/whoami", authenticate({ roles: ["service"], clientSecret: true }), (c) => c.json({ sub: requireTokenSub(c) }));
});
afterAll(() => t.close());

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

function call(path: string, headers: Record<string, string> = {}) {
  return t.app.request(path, { headers });
}
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

async function expectProblem(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  const body = (await res.json()) as { code: string; request_id: string };
  expect(body.code).toBe(code);
  expect(body.request_id).toBe(res.headers.get("x-request-id"));
  return body;
}

describe("bearer tokens", () => {
  it("lets a valid service token in and exposes its principal", async () => {
    const token = await signToken(secret, { sub: "shop-1", role: "service", ttlSeconds: 60 });
    const res = await call("/test/service-only", bearer(token));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ kind: "token", sub: "shop-1", role: "service" });
  });

  it("accepts the scheme name in any case", async () => {
    const token = await signToken(secret, { sub: "shop-1", role: "service", ttlSeconds: 60 });
    expect((await call("/test/service-only", { Authorization: `bearer ${token}` })).status).toBe(200);
  });

  it("answers 401 with a Bearer challenge when no Authorization header is sent", async () => {
    const res = await call("/test/service-only");
    await expectProblem(res, 401, "unauthenticated");
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
  });

  it.each([
    ["a Basic credential", "Basic dXNlcjpwYXNz"],
    ["Bearer with no token", "Bearer "],
    ["garbage", "Bearer not-a-jwt"],
    ["two parts only", "Bearer abc.def"],
  ])("answers 401 for %s", async (_name, authorization) => {
    const res = await call("/test/service-only", { Authorization: authorization });
    await expectProblem(res, 401, "unauthenticated");
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
  });

  it("refuses an unsigned alg:none token", async () => {
    const token = `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ sub: "shop-1", role: "admin", exp: inAnHour() })}.`;
    await expectProblem(await call("/test/service-or-admin", bearer(token)), 401, "unauthenticated");
  });

  it("refuses a token that claims alg:none but carries the HS256 signature of its contents", async () => {
    const real = await signToken(secret, { sub: "shop-1", role: "service", ttlSeconds: 60 });
    const [, payload, signature] = real.split(".");
    const token = `${b64url({ alg: "none", typ: "JWT" })}.${payload}.${signature}`;
    await expectProblem(await call("/test/service-only", bearer(token)), 401, "unauthenticated");
  });

  it("refuses a token signed with another algorithm than HS256, even with the right secret", async () => {
    const token = await sign({ sub: "shop-1", role: "service", exp: inAnHour() }, secret, "HS512");
    await expectProblem(await call("/test/service-only", bearer(token)), 401, "unauthenticated");
  });

  it("refuses an RS256 header on an HS256 signature (algorithm confusion)", async () => {
    const payload = b64url({ sub: "shop-1", role: "service", exp: inAnHour() });
    const header = b64url({ alg: "RS256", typ: "JWT" });
    const hs = (await sign({ sub: "shop-1", role: "service", exp: inAnHour() }, secret, "HS256")).split(".")[2];
    await expectProblem(await call("/test/service-only", bearer(`${header}.${payload}.${hs}`)), 401, "unauthenticated");
  });

  it("refuses an expired token", async () => {
    const token = await signToken(secret, { sub: "shop-1", role: "service", ttlSeconds: 60, now: new Date(Date.now() - 120_000) });
    const res = await call("/test/service-only", bearer(token));
    await expectProblem(res, 401, "unauthenticated");
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it("refuses a token signed with another secret", async () => {
    const token = await signToken(randomBytes(32).toString("hex"), { sub: "shop-1", role: "service", ttlSeconds: 60 });
    await expectProblem(await call("/test/service-only", bearer(token)), 401, "unauthenticated");
  });

  it("refuses a token whose payload was changed after signing", async () => {
    const [header, , signature] = (await signToken(secret, { sub: "shop-1", role: "service", ttlSeconds: 60 })).split(".");
    const forged = `${header}.${b64url({ sub: "shop-1", role: "admin", exp: inAnHour() })}.${signature}`;
    await expectProblem(await call("/test/service-or-admin", bearer(forged)), 401, "unauthenticated");
  });

  it.each([
    ["no role", { sub: "shop-1", exp: 1 }],
    ["an unknown role", { sub: "shop-1", role: "root", exp: 1 }],
    ["a role that is not a string", { sub: "shop-1", role: ["service"], exp: 1 }],
    ["no sub", { role: "service", exp: 1 }],
    ["an empty sub", { sub: "", role: "service", exp: 1 }],
    ["a numeric sub", { sub: 42, role: "service", exp: 1 }],
    ["no exp", { sub: "shop-1", role: "service" }],
    ["a string exp", { sub: "shop-1", role: "service", exp: "9999999999" }],
    ["a future nbf", { sub: "shop-1", role: "service", exp: 1, nbf: 1 }],
  ])("refuses a correctly signed token with %s", async (_name, claims: Record<string, unknown>) => {
    // exp/nbf of 1 stand for "a valid time": an hour ahead (exp), or ten minutes ahead for nbf, which is not yet valid.
    const payload = { ...claims };
    if (payload.exp === 1) payload.exp = inAnHour();
    if (payload.nbf === 1) payload.nbf = Math.floor(Date.now() / 1000) + 600;
    const token = await sign(payload, secret, "HS256");
    await expectProblem(await call("/test/service-or-admin", bearer(token)), 401, "unauthenticated");
  });

  it("answers 403 to a valid token whose role is not allowed here", async () => {
    for (const role of ["admin", "system"] as const) {
      const token = await signToken(secret, { sub: "ops", role, ttlSeconds: 60 });
      await expectProblem(await call("/test/service-only", bearer(token)), 403, "forbidden");
    }
    const admin = await signToken(secret, { sub: "ops", role: "admin", ttlSeconds: 60 });
    expect(await (await call("/test/service-or-admin", bearer(admin))).json()).toEqual({ kind: "token", sub: "ops", role: "admin" });
  });

  it("judges expiry by the app's clock", async () => {
    const later = new Date(Date.now() + 3_600_000);
    const clocked = await createTestApp({ now: () => later });
    try {
      clocked.app.get("/test/clock", authenticate({ roles: ["service"] }), (c) => c.json(c.var.principal));
      const jwtSecret = clocked.deps.config.jwtSecret!;
      const stale = await signToken(jwtSecret, { sub: "shop-1", role: "service", ttlSeconds: 600 });
      expect((await clocked.app.request("/test/clock", { headers: bearer(stale) })).status).toBe(401);
      const fresh = await signToken(jwtSecret, { sub: "shop-1", role: "service", ttlSeconds: 600, now: later });
      expect((await clocked.app.request("/test/clock", { headers: bearer(fresh) })).status).toBe(200);
    } finally {
      await clocked.close();
    }
  });
});

describe("client secrets", () => {
  it("accepts a client secret in the X-Client-Secret header where allowed", async () => {
    const res = await call("/test/checkout", { "X-Client-Secret": "cs_abc123" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ kind: "client", secret: "cs_abc123" });
  });

  it("accepts a client secret in the client_secret query parameter where allowed", async () => {
    const res = await call("/test/checkout?client_secret=cs_query_456");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ kind: "client", secret: "cs_query_456" });
  });

  it("refuses a client secret where only tokens are allowed", async () => {
    await expectProblem(await call("/test/service-only", { "X-Client-Secret": "cs_abc123" }), 401, "unauthenticated");
    await expectProblem(await call("/test/service-only?client_secret=cs_abc123"), 401, "unauthenticated");
  });

  it("answers 401 when neither a token nor a client secret is sent", async () => {
    await expectProblem(await call("/test/checkout"), 401, "unauthenticated");
    await expectProblem(await call("/test/checkout?client_secret="), 401, "unauthenticated");
  });

  it("does not fall back to the client secret when a bad token is sent", async () => {
    const res = await call("/test/checkout", { Authorization: "Bearer nope", "X-Client-Secret": "cs_abc123" });
    await expectProblem(res, 401, "unauthenticated");
  });

  it("prefers a valid token over a client secret", async () => {
    const token = await signToken(secret, { sub: "shop-1", role: "service", ttlSeconds: 60 });
    const res = await call("/test/checkout", { ...bearer(token), "X-Client-Secret": "cs_abc123" });
    expect(await res.json()).toEqual({ kind: "token", sub: "shop-1", role: "service" });
  });

  it("requireTokenSub gives a token's sub and refuses a client secret with 403", async () => {
    const token = await signToken(secret, { sub: "shop-9", role: "service", ttlSeconds: 60 });
    expect(await (await call("/test/whoami", bearer(token))).json()).toEqual({ sub: "shop-9" });
    await expectProblem(await call("/test/whoami", { "X-Client-Secret": "cs_abc123" }), 403, "forbidden");
  });
});
