import { randomBytes } from "node:crypto";
import { sign } from "hono/jwt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signToken, type Role } from "../../lib/http/auth/tokens.js";
import { createTestApp, jsonRequest, newKey, type TestContext } from "../support/app.js";
import { createPayment, payThroughSandbox } from "../support/flow.js";

// Every protected route against every kind of bad credential, table-driven: the route table is
// checked against the OpenAPI document, so a protected route cannot be added without showing up here.

interface Created {
  id: string;
  client_secret: string;
  checkout_url: string;
}

let t: TestContext;
let mine: Created; // created, not paid
let theirs: Created; // another shop customer's payment, paid
let refundId: string;
let eventId: string;

beforeAll(async () => {
  t = await createTestApp();
  mine = (await createPayment(t)) as unknown as Created;
  theirs = (await createPayment(t)) as unknown as Created;
  await payThroughSandbox(t, theirs.checkout_url, "approve");
  const refund = await t.app.request(
    `/v1/payments/${theirs.id}/refunds`,
    jsonRequest("POST", { amount: 100 }, { ...(await token("service")), "Idempotency-Key": newKey() }),
  );
  expect(refund.status).toBe(201);
  refundId = ((await refund.json()) as { id: string }).id;
  const events = (await (await t.app.request("/v1/events", { headers: await token("admin") })).json()) as { data: { id: string }[] };
  eventId = events.data[0]!.id;
}, 60_000);
afterAll(() => t.close());

async function token(role: Role, options: { sub?: string; secret?: string; now?: Date; ttlSeconds?: number } = {}) {
  const jwt = await signToken(options.secret ?? t.deps.config.jwtSecret!, {
    sub: options.sub ?? "shop-1",
    role,
    ttlSeconds: options.ttlSeconds ?? 600,
    now: options.now ?? t.deps.now(),
  });
  return { Authorization: `Bearer ${jwt}` };
}

interface Route {
  method: "GET" | "POST";
  /** As in the OpenAPI document. */
  path: string;
  roles: Role[];
  /** Whether a checkout page's client secret may call it (for its own payment). */
  clientSecret?: boolean;
  url: () => string;
  body?: () => unknown;
}

const routes: Route[] = [
  { method: "POST", path: "/v1/payments", roles: ["service"], url: () => "/v1/payments", body: () => ({}) },
  { method: "GET", path: "/v1/payments", roles: ["service", "admin"], url: () => "/v1/payments" },
  { method: "GET", path: "/v1/payments/{id}", roles: ["service", "admin"], clientSecret: true, url: () => `/v1/payments/${mine.id}` },
  { method: "POST", path: "/v1/payments/{id}/cancel", roles: ["service"], url: () => `/v1/payments/${mine.id}/cancel` },
  {
    method: "POST",
    path: "/v1/payments/{id}/checkout",
    roles: ["service"],
    clientSecret: true,
    url: () => `/v1/payments/${mine.id}/checkout`,
    body: () => ({}),
  },
  { method: "GET", path: "/v1/payments/{id}/seamless", roles: ["service"], clientSecret: true, url: () => `/v1/payments/${mine.id}/seamless` },
  {
    method: "POST",
    path: "/v1/payments/{id}/refunds",
    roles: ["service", "admin"],
    url: () => `/v1/payments/${theirs.id}/refunds`,
    body: () => ({ amount: 1 }),
  },
  { method: "GET", path: "/v1/payments/{id}/refunds", roles: ["service", "admin"], url: () => `/v1/payments/${theirs.id}/refunds` },
  { method: "GET", path: "/v1/refunds/{id}", roles: ["service", "admin"], url: () => `/v1/refunds/${refundId}` },
  { method: "GET", path: "/v1/events", roles: ["admin"], url: () => "/v1/events" },
  { method: "POST", path: "/v1/events/{id}/redeliver", roles: ["admin"], url: () => `/v1/events/${eventId}/redeliver` },
  { method: "POST", path: "/jobs/reconcile", roles: ["system"], url: () => "/jobs/reconcile" },
  { method: "POST", path: "/jobs/expire", roles: ["system"], url: () => "/jobs/expire" },
  { method: "POST", path: "/jobs/deliver", roles: ["system"], url: () => "/jobs/deliver" },
  { method: "POST", path: "/jobs/retention", roles: ["system"], url: () => "/jobs/retention" },
  { method: "POST", path: "/v1/customers/erase", roles: ["admin"], url: () => "/v1/customers/erase", body: () => ({ email: "nobody@example.my" }) },
];
const label = (r: Route) => `${r.method} ${r.path}`;

/** Calls a route as it would be called for real, except for the credentials. Mutating calls carry no Idempotency-Key, so one that got past authentication could not run. */
function call(route: Route, headers: Record<string, string>) {
  const init: RequestInit = { method: route.method, headers: { ...headers } };
  if (route.body) {
    init.body = JSON.stringify(route.body());
    (init.headers as Record<string, string>)["content-type"] = "application/json";
  }
  return t.app.request(route.url(), init);
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const inAnHour = () => Math.floor(t.deps.now().getTime() / 1000) + 3600;

/** Credentials that must never get in, whatever the route. */
const badCredentials: [string, () => Promise<Record<string, string>>][] = [
  ["no credentials", async () => ({})],
  [
    "an alg:none token",
    async () => ({ Authorization: `Bearer ${b64url({ alg: "none", typ: "JWT" })}.${b64url({ sub: "shop-1", role: "admin", exp: inAnHour() })}.` }),
  ],
  [
    "an alg:none header on a valid signature",
    async () => {
      const [, payload, signature] = (await token("admin")).Authorization.slice(7).split(".");
      return { Authorization: `Bearer ${b64url({ alg: "none", typ: "JWT" })}.${payload}.${signature}` };
    },
  ],
  [
    "an HS512 token",
    async () => ({ Authorization: `Bearer ${await sign({ sub: "shop-1", role: "admin", exp: inAnHour() }, t.deps.config.jwtSecret!, "HS512")}` }),
  ],
  ["an expired token", async () => token("admin", { now: new Date(t.deps.now().getTime() - 3_600_000), ttlSeconds: 60 })],
  ["a token signed with another secret", async () => token("admin", { secret: randomBytes(32).toString("hex") })],
  [
    "a token whose role was changed after signing",
    async () => {
      const [header, , signature] = (await token("service")).Authorization.slice(7).split(".");
      return { Authorization: `Bearer ${header}.${b64url({ sub: "shop-1", role: "admin", exp: inAnHour() })}.${signature}` };
    },
  ],
  [
    "a token without a role",
    async () => ({ Authorization: `Bearer ${await sign({ sub: "shop-1", exp: inAnHour() }, t.deps.config.jwtSecret!, "HS256")}` }),
  ],
  [
    "a token with an unknown role",
    async () => ({ Authorization: `Bearer ${await sign({ sub: "shop-1", role: "root", exp: inAnHour() }, t.deps.config.jwtSecret!, "HS256")}` }),
  ],
  [
    "a token without an expiry",
    async () => ({ Authorization: `Bearer ${await sign({ sub: "shop-1", role: "admin" }, t.deps.config.jwtSecret!, "HS256")}` }),
  ],
  ["a client secret sent as a bearer token", async () => ({ Authorization: `Bearer ${mine.client_secret}` })],
  ["a Basic credential", async () => ({ Authorization: `Basic ${Buffer.from("admin:admin").toString("base64")}` })],
];

async function expectProblem(res: Response, status: number, code: string, what: string) {
  expect(res.status, what).toBe(status);
  expect(res.headers.get("content-type"), what).toBe("application/problem+json");
  expect(((await res.json()) as { code: string }).code, what).toBe(code);
}

describe("the route table", () => {
  it("names every route the OpenAPI document marks as protected, and only those", async () => {
    const doc = (await (await t.app.request("/openapi.json")).json()) as { paths: Record<string, Record<string, { security?: unknown[] }>> };
    const protectedRoutes = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods)
        .filter(([, op]) => (op.security?.length ?? 0) > 0)
        .map(([method]) => `${method.toUpperCase()} ${path}`),
    );
    expect(routes.map(label).sort()).toEqual(protectedRoutes.sort());
  });
});

describe.each(routes)("$method $path", (route) => {
  it.each(badCredentials)("answers %s with 401 and a Bearer challenge", async (name, credentials) => {
    const res = await call(route, await credentials());
    await expectProblem(res, 401, "unauthenticated", `${label(route)} with ${name}`);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
  });

  it("answers a valid token of every other role with 403, and lets its own roles past authentication", async () => {
    for (const role of ["service", "admin", "system"] as const) {
      const res = await call(route, await token(role));
      if (route.roles.includes(role)) expect([401, 403], `${label(route)} as ${role}`).not.toContain(res.status);
      else await expectProblem(res, 403, "forbidden", `${label(route)} as ${role}`);
    }
  });

  it(route.clientSecret ? "accepts its own payment's client secret" : "refuses a client secret with 401", async () => {
    for (const headers of [{ "X-Client-Secret": mine.client_secret }, {}] as Record<string, string>[]) {
      const url =
        Object.keys(headers).length === 0
          ? `${route.url()}${route.url().includes("?") ? "&" : "?"}client_secret=${encodeURIComponent(mine.client_secret)}`
          : route.url();
      const init: RequestInit = { method: route.method, headers };
      if (route.body) init.body = JSON.stringify(route.body());
      if (route.body) (init.headers as Record<string, string>)["content-type"] = "application/json";
      const res = await t.app.request(url, init);
      if (route.clientSecret) expect(res.status, label(route)).toBe(200);
      else await expectProblem(res, 401, "unauthenticated", `${label(route)} with a client secret`);
    }
  });
});

describe("a client secret", () => {
  const secretOf = () => ({ "X-Client-Secret": mine.client_secret });

  it("reads its own payment with the customer masked", async () => {
    const res = await t.app.request(`/v1/payments/${mine.id}`, { headers: secretOf() });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { customer: { name: string; email: string } };
    expect(body.customer.name).not.toBe("Mei Ling");
    expect(body.customer.email).not.toBe("mei@example.my");
  });

  it("cannot read, check out or open the page of another payment: 404, as if it did not exist", async () => {
    expect((await t.app.request(`/v1/payments/${theirs.id}`, { headers: secretOf() })).status).toBe(404);
    expect((await t.app.request(`/v1/payments/${theirs.id}?client_secret=${mine.client_secret}`)).status).toBe(404);
    expect((await t.app.request(`/v1/payments/${theirs.id}/checkout`, jsonRequest("POST", {}, secretOf()))).status).toBe(404);
    expect((await t.app.request(`/v1/payments/${theirs.id}/seamless`, { headers: secretOf() })).status).toBe(404);
    expect((await t.app.request(`/pay/${theirs.id}?client_secret=${mine.client_secret}`)).status).toBe(404);
  });

  it("cannot list, refund, cancel, read refunds or events, or run jobs, even for its own payment", async () => {
    const attempts: [string, RequestInit][] = [
      ["/v1/payments", { headers: secretOf() }],
      [`/v1/payments?order_id=x&client_secret=${mine.client_secret}`, {}],
      [
        `/v1/payments/${mine.id}/refunds`,
        { method: "POST", body: "{}", headers: { ...secretOf(), "content-type": "application/json", "Idempotency-Key": newKey() } },
      ],
      [
        `/v1/payments/${theirs.id}/refunds`,
        { method: "POST", body: "{}", headers: { ...secretOf(), "content-type": "application/json", "Idempotency-Key": newKey() } },
      ],
      [`/v1/payments/${mine.id}/cancel`, { method: "POST", headers: { ...secretOf(), "Idempotency-Key": newKey() } }],
      [`/v1/payments/${mine.id}/refunds`, { headers: secretOf() }],
      [`/v1/refunds/${refundId}`, { headers: secretOf() }],
      ["/v1/events", { headers: secretOf() }],
      [`/v1/events/${eventId}/redeliver`, { method: "POST", headers: secretOf() }],
      ["/jobs/reconcile", { method: "POST", headers: secretOf() }],
      ["/v1/payments", { method: "POST", body: "{}", headers: { ...secretOf(), "content-type": "application/json", "Idempotency-Key": newKey() } }],
    ];
    for (const [url, init] of attempts) {
      const res = await t.app.request(url, init);
      await expectProblem(res, 401, "unauthenticated", `${init.method ?? "GET"} ${url}`);
    }
    const status = (await (await t.app.request(`/v1/payments/${mine.id}`, { headers: await token("service") })).json()) as { status: string };
    expect(status.status).toBe("created");
  });

  it("of another payment, or a wrong one, reads nothing", async () => {
    for (const secret of [theirs.client_secret, `${mine.client_secret}x`, mine.client_secret.slice(0, -1), mine.client_secret.toUpperCase()]) {
      expect((await t.app.request(`/v1/payments/${mine.id}`, { headers: { "X-Client-Secret": secret } })).status).toBe(404);
    }
  });
});
