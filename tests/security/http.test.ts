import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearer, createTestApp, jsonRequest, newKey, type TestContext } from "../support/app.js";
import { formPost, signedReport } from "../support/fiuu.js";

// Browser-facing protections: CORS only for ALLOWED_ORIGINS, secure headers on every kind of
// answer, and the per-client limit on payment creation.

const allowed = ["https://shop.example", "https://admin.shop.example"];
// Windows are fixed and numbered from the epoch: the tests stand at a known second of one.
let clock = new Date();
const at = (secondOfWindow: number) => {
  const start = Math.floor(Date.now() / 60_000) * 60;
  clock = new Date((start + secondOfWindow) * 1000);
};

let t: TestContext;
type Created = { id: string; client_secret: string; checkout_url: string; gateway: { order_id: string } };
let payment: Created;
let reported: Created; // a payment that receives a real report, so the text answer to Fiuu can be seen
beforeAll(async () => {
  t = await createTestApp({ env: { ALLOWED_ORIGINS: allowed.join(","), RATE_LIMIT_PAYMENTS_PER_MINUTE: "5" }, now: () => clock });
  // Something that throws, to see the 500 problem's headers.
  t.app.get("/test/boom", () => {
    throw new Error("boom");
  });
  // Created under a sub of their own: this app allows 5 creations a minute per sub, and a real
  // Redis is shared with other test files creating as "shop-1".
  const fixture = async () => {
    const res = await t.app.request(
      "/v1/payments",
      jsonRequest(
        "POST",
        {
          order_id: `SH-${randomUUID()}`,
          amount: 2590,
          currency: "MYR",
          description: "Teh tarik",
          customer: { name: "Mei Ling", email: "mei@example.my" },
        },
        { ...(await bearer(t, "service", `fixtures-${randomUUID()}`)), "Idempotency-Key": newKey() },
      ),
    );
    expect(res.status).toBe(201);
    return (await res.json()) as Created;
  };
  payment = await fixture();
  reported = await fixture();
}, 60_000);
afterAll(() => t.close());

describe("CORS", () => {
  const preflight = (origin: string, path = "/v1/payments") =>
    t.app.request(path, {
      method: "OPTIONS",
      headers: {
        Origin: origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
      },
    });

  it("answers a preflight from each allowed origin with that origin, the methods and the API's headers", async () => {
    for (const origin of allowed) {
      const res = await preflight(origin);
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(origin);
      expect(res.headers.get("access-control-allow-methods")).toContain("POST");
      expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("idempotency-key");
      expect(res.headers.get("vary")?.toLowerCase()).toContain("origin");
      expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    }
  });

  it.each([
    ["another site", "https://evil.example"],
    ["a suffix of an allowed origin", "https://shop.example.evil.example"],
    ["an allowed host over http", "http://shop.example"],
    ["an allowed origin with a port", "https://shop.example:8443"],
    ["a subdomain not listed", "https://www.shop.example"],
    ["the null origin", "null"],
  ])("grants nothing to %s, preflight or simple request", async (_name, origin) => {
    const pre = await preflight(origin);
    expect(pre.headers.get("access-control-allow-origin")).toBeNull();
    expect(pre.headers.get("access-control-allow-credentials")).toBeNull();
    const simple = await t.app.request("/v1/payment-methods", { headers: { Origin: origin } });
    expect(simple.status).toBe(200);
    expect(simple.headers.get("access-control-allow-origin")).toBeNull();
    const read = await t.app.request(`/v1/payments/${payment.id}`, { headers: { Origin: origin, "X-Client-Secret": payment.client_secret } });
    expect(read.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("lets an allowed origin read simple answers and errors, exposing only the listed headers", async () => {
    const simple = await t.app.request("/v1/payment-methods", { headers: { Origin: allowed[0]! } });
    expect(simple.headers.get("access-control-allow-origin")).toBe(allowed[0]);
    const exposed = simple.headers.get("access-control-expose-headers")?.toLowerCase() ?? "";
    expect(exposed).toContain("x-request-id");
    expect(exposed).toContain("retry-after");
    expect(exposed).not.toContain("authorization");
    const error = await t.app.request("/v1/payments/pay_nope", { headers: { Origin: allowed[1]!, "X-Client-Secret": "x" } });
    expect(error.status).toBe(404);
    expect(error.headers.get("access-control-allow-origin")).toBe(allowed[1]);
  });

  it("grants no origin at all when ALLOWED_ORIGINS is empty", async () => {
    const closed = await createTestApp();
    try {
      for (const origin of [...allowed, "https://evil.example"]) {
        const pre = await closed.app.request("/v1/payments", {
          method: "OPTIONS",
          headers: { Origin: origin, "Access-Control-Request-Method": "POST" },
        });
        expect(pre.headers.get("access-control-allow-origin")).toBeNull();
        const simple = await closed.app.request("/v1/payment-methods", { headers: { Origin: origin } });
        expect(simple.headers.get("access-control-allow-origin")).toBeNull();
      }
    } finally {
      await closed.close();
    }
  });
});

describe("secure headers", () => {
  /** Each kind of answer the service gives, by content type and path through the code. */
  const answers: [string, string, () => Response | Promise<Response>][] = [
    ["JSON", "application/json", () => t.app.request("/v1/payment-methods")],
    [
      "JSON with a client secret",
      "application/json",
      () => t.app.request(`/v1/payments/${payment.id}`, { headers: { "X-Client-Secret": payment.client_secret } }),
    ],
    ["the OpenAPI document", "application/json", () => t.app.request("/openapi.json")],
    ["a 404 problem", "application/problem+json", () => t.app.request("/nothing/here")],
    ["a 401 problem", "application/problem+json", () => t.app.request("/v1/payments")],
    ["a 400 problem", "application/problem+json", async () => t.app.request("/v1/payments?limit=0", { headers: await bearer(t) })],
    [
      "a 413 problem",
      "application/problem+json",
      () => t.app.request("/webhooks/fiuu/notify", { method: "POST", body: "x".repeat(1024 * 1024 + 1) }),
    ],
    ["a 500 problem", "application/problem+json", () => t.app.request("/test/boom")],
    ["the checkout page (HTML)", "text/html", () => t.app.request(new URL(payment.checkout_url).pathname + new URL(payment.checkout_url).search)],
    ["an HTML error page", "text/html", () => t.app.request(`/pay/${payment.id}?client_secret=wrong`)],
    ["the result page (HTML)", "text/html", () => t.app.request(`/pay/${payment.id}/result`)],
    ["the API reference (HTML)", "text/html", () => t.app.request("/docs")],
    [
      "a text answer to Fiuu (callback)",
      "text/plain",
      () =>
        t.app.request(
          "/webhooks/fiuu/callback",
          formPost(signedReport(t.deps.config.fiuu, { orderid: reported.gateway.order_id, status: "22", amount: "25.90", nbcb: "1" })),
        ),
    ],
    ["a redirect (return URL)", "", () => t.app.request(`/webhooks/fiuu/return?orderid=${reported.gateway.order_id}&skey=${"0".repeat(32)}`)],
    [
      "a CORS preflight",
      "",
      () => t.app.request("/v1/payments", { method: "OPTIONS", headers: { Origin: allowed[0]!, "Access-Control-Request-Method": "POST" } }),
    ],
  ];

  it.each(answers)("are set on %s", async (_name, contentType, send) => {
    const res = await send();
    if (contentType) expect(res.headers.get("content-type") ?? "").toContain(contentType);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("strict-transport-security")).toMatch(/max-age=\d+/);
    expect(res.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("cross-origin-opener-policy")).toBe("same-origin");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers.get("x-powered-by")).toBeNull();
    expect(res.headers.get("server")).toBeNull();
  });

  it("keeps the checkout page, which carries the signed form, out of caches and referrers", async () => {
    const url = new URL(payment.checkout_url);
    const res = await t.app.request(url.pathname + url.search);
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
  });
});

describe("the limit on payment creation", () => {
  // RATE_LIMIT_PAYMENTS_PER_MINUTE=5 for this app; every run uses its own subs so a real Redis
  // shared with other test files never mixes their counters.
  const create = async (sub: string) =>
    t.app.request(
      "/v1/payments",
      jsonRequest(
        "POST",
        { order_id: `RL-${randomUUID()}`, amount: 1050, currency: "MYR", description: "Kopi", customer: { name: "A", email: "a@example.my" } },
        { ...(await bearer(t, "service", sub)), "Idempotency-Key": newKey() },
      ),
    );

  it("answers a client's sixth creation within a minute with 429 and Retry-After, and counts each client on its own", async () => {
    at(20);
    const [shopA, shopB] = [`shop-a-${randomUUID()}`, `shop-b-${randomUUID()}`];
    for (let i = 0; i < 5; i++) expect((await create(shopA)).status).toBe(201);
    const refused = await create(shopA);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("40");
    expect(refused.headers.get("content-type")).toBe("application/problem+json");
    expect(((await refused.json()) as { code: string }).code).toBe("rate_limited");
    expect(refused.headers.get("x-content-type-options")).toBe("nosniff");

    expect((await create(shopB)).status).toBe(201);
    at(59);
    const later = await create(shopA);
    expect(later.status).toBe(429);
    expect(later.headers.get("retry-after")).toBe("1");
    at(60 + 1);
    expect((await create(shopA)).status).toBe(201);
  });

  it("counts refused and invalid attempts too: a client cannot probe past its budget", async () => {
    at(5);
    const shop = `shop-c-${randomUUID()}`;
    const headers = await bearer(t, "service", shop);
    for (let i = 0; i < 5; i++) {
      const res = await t.app.request("/v1/payments", jsonRequest("POST", { nonsense: true }, { ...headers, "Idempotency-Key": newKey() }));
      expect(res.status).toBe(400);
    }
    expect((await create(shop)).status).toBe(429);
  });

  it("does not store the 429 under the Idempotency-Key: the same request succeeds in the next window", async () => {
    at(30);
    const shop = `shop-d-${randomUUID()}`;
    for (let i = 0; i < 5; i++) await create(shop);
    const key = newKey();
    const body = {
      order_id: `RL-${randomUUID()}`,
      amount: 1050,
      currency: "MYR",
      description: "Kopi",
      customer: { name: "A", email: "a@example.my" },
    };
    const send = async () =>
      t.app.request("/v1/payments", jsonRequest("POST", body, { ...(await bearer(t, "service", shop)), "Idempotency-Key": key }));
    expect((await send()).status).toBe(429);
    at(61);
    const retried = await send();
    expect(retried.status).toBe(201);
    expect(retried.headers.get("idempotency-replayed")).toBeNull();
  });
});
