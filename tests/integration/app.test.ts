import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError } from "../../lib/core/errors.js";
import { createTestApp, type TestContext } from "../support/app.js";

let t: TestContext;
beforeAll(async () => {
  t = await createTestApp({ env: { ALLOWED_ORIGINS: "https://shop.example" } });
  // Routes that fail on purpose, to see what callers get from the one error handler.
  t.app.get("/test/boom", () => {
    throw new Error("database password is hunter2");
  });
  t.app.get("/test/conflict", () => {
    throw new ApiError("invalid_state", "Payment pay_1 is already paid.");
  });
  t.app.get("/test/db-down", () => {
    throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
  });
  t.app.post("/test/echo", async (c) => c.json({ length: (await c.req.text()).length }));
});
afterAll(() => t.close());

async function problem(res: Response) {
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  return (await res.json()) as Record<string, unknown>;
}

describe("problem documents", () => {
  it("answers an unknown route with a 404 problem carrying the request id", async () => {
    const res = await t.app.request("/v1/nothing-here");
    expect(res.status).toBe(404);
    const body = await problem(res);
    expect(body).toMatchObject({ type: "/problems/not_found", title: "Not found", status: 404, code: "not_found" });
    expect(body.request_id).toBe(res.headers.get("x-request-id"));
    expect(String(body.detail)).toContain("/v1/nothing-here");
  });

  it("keeps a caller's plain request id and replaces one that could forge log lines", async () => {
    const kept = await t.app.request("/nothing", { headers: { "X-Request-Id": "req-abc_123" } });
    expect(kept.headers.get("x-request-id")).toBe("req-abc_123");
    const replaced = await t.app.request("/nothing", { headers: { "X-Request-Id": 'bad"\\id' } });
    expect(replaced.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("maps an ApiError to its status and code", async () => {
    const res = await t.app.request("/test/conflict");
    expect(res.status).toBe(409);
    expect(await problem(res)).toMatchObject({ code: "invalid_state", detail: "Payment pay_1 is already paid." });
  });

  it("answers an unexpected error with a generic 500 and keeps its details in the log", async () => {
    const res = await t.app.request("/test/boom");
    expect(res.status).toBe(500);
    const body = await problem(res);
    expect(body.code).toBe("internal_error");
    expect(JSON.stringify(body)).not.toContain("hunter2");
    const logged = t.logs.lines.find((l) => l.msg === "unhandled error" && l.request_id === body.request_id);
    expect(logged).toBeDefined();
  });

  it("answers 503 with Retry-After when a dependency is unreachable", async () => {
    const res = await t.app.request("/test/db-down");
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    expect((await problem(res)).code).toBe("unavailable");
  });

  it("refuses a body over 1 MB with 413 and reads one under it", async () => {
    const big = await t.app.request("/test/echo", { method: "POST", body: "x".repeat(1024 * 1024 + 1) });
    expect(big.status).toBe(413);
    expect((await problem(big)).code).toBe("payload_too_large");
    const fine = await t.app.request("/test/echo", { method: "POST", body: "x".repeat(1000) });
    expect(await fine.json()).toEqual({ length: 1000 });
  });
});

describe("headers", () => {
  it("sets secure headers on every answer", async () => {
    const res = await t.app.request("/anything");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("strict-transport-security")).toContain("max-age=");
    expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(res.headers.get("x-frame-options")).toBe("SAMEORIGIN");
  });

  it("allows cross-origin calls only from ALLOWED_ORIGINS", async () => {
    const preflight = (origin: string) =>
      t.app.request("/v1/payments", {
        method: "OPTIONS",
        headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization" },
      });
    const allowed = await preflight("https://shop.example");
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://shop.example");
    const refused = await preflight("https://evil.example");
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("logs", () => {
  it("writes JSON lines carrying the request id, with secrets and customer details redacted", async () => {
    const res = await t.app.request("/test/boom", { headers: { "X-Request-Id": "log-check-1" } });
    expect(res.status).toBe(500);
    const line = t.logs.lines.find((l) => l.request_id === "log-check-1");
    expect(line).toMatchObject({ level: "error", service: "payment-service" });
    expect(typeof line?.time).toBe("string");

    t.deps.logger.info(
      { headers: { authorization: "Bearer abc.def.ghi" }, customer: { email: "siti@example.my" }, skey: "f00d", client_secret: "cs_123" },
      "redaction check",
    );
    const raw = t.logs.raw.find((l) => l.includes("redaction check"))!;
    for (const secret of ["abc.def.ghi", "siti@example.my", "f00d", "cs_123"]) expect(raw).not.toContain(secret);
    expect(raw).toContain("[redacted]");
  });
});
