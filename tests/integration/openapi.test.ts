import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Role } from "../../lib/http/auth/tokens.js";
import { eventTypes } from "../../lib/domain/webhooks/events.js";
import { ProblemSchema } from "../../lib/http/openapi.js";
import { bearer, createTestApp, jsonRequest, newKey, type TestContext } from "../support/app.js";
import { createPayment, payThroughSandbox } from "../support/flow.js";

// The OpenAPI document against what the service really answers. Every operation of the document
// is called in a table of probes — no credentials, a bad token, each role, a client secret, a bad
// body or query, no Idempotency-Key, an unknown id, a conflicting state, a URL or body the service
// cannot take, and a valid request — and every status seen must be one the operation declares,
// errors as application/problem+json of the Problem schema, successes with their schema's fields.

type Json = Record<string, any>;
interface Doc {
  paths: Record<string, Record<string, Json>>;
  webhooks: Record<string, Record<string, Json>>;
  components: { schemas: Record<string, Json> };
  tags: { name: string; description: string }[];
  info: { description: string };
}
interface Call {
  path: string;
  init?: RequestInit;
}
type Auth = Record<string, string>;
/** A valid call of an operation with these credentials (fresh state where the operation changes it). */
type ValidCall = (auth: Auth) => Promise<Call>;

let t: TestContext;
let doc: Doc;
const roles: Role[] = ["service", "admin", "system"];
const unknownIds: Record<string, string> = {
  payment: "pay_00000000000000000000000000",
  refund: "re_00000000000000000000000000",
  event: "evt_00000000000000000000000000",
};

beforeAll(async () => {
  // A receiver, so that redelivery has somewhere to send (nothing listens: deliveries just fail).
  t = await createTestApp({ env: { WEBHOOK_URLS: "http://127.0.0.1:9/webhooks" } });
  doc = (await (await t.app.request("/openapi.json")).json()) as Doc;
}, 60_000);
afterAll(() => t?.close());

const post = (body: unknown, auth: Auth, idempotent = false): RequestInit =>
  jsonRequest("POST", body, { ...auth, ...(idempotent ? { "Idempotency-Key": newKey() } : {}) });
const paymentBody = () => ({
  order_id: `DOC-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
  amount: 1050,
  currency: "MYR",
  description: "2 x Kopi O",
  customer: { name: "Siti Aminah", email: "siti@example.my", mobile: "+60123456789" },
});
async function paidPayment() {
  const payment = await createPayment(t, { amount: 1050 });
  await payThroughSandbox(t, payment.checkout_url, "approve");
  return payment;
}
async function refundOf(paymentId: string) {
  const res = await t.app.request(`/v1/payments/${paymentId}/refunds`, post({ amount: 100 }, await bearer(t), true));
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string };
}
async function someEventId() {
  await paidPayment();
  const res = await t.app.request("/v1/events?limit=1", { headers: await bearer(t, "admin") });
  return ((await res.json()) as { data: { id: string }[] }).data[0]!.id;
}

/** A valid call per operation of the document; an operation missing here fails the test until it is added. */
const validCalls: Record<string, ValidCall> = {
  "POST /v1/payments": async (auth) => ({ path: "/v1/payments", init: post(paymentBody(), auth, true) }),
  "GET /v1/payments": async (auth) => ({ path: "/v1/payments?limit=2", init: { headers: auth } }),
  "GET /v1/payments/{id}": async (auth) => ({ path: `/v1/payments/${(await createPayment(t)).id}`, init: { headers: auth } }),
  "POST /v1/payments/{id}/cancel": async (auth) => ({ path: `/v1/payments/${(await createPayment(t)).id}/cancel`, init: post({}, auth, true) }),
  "POST /v1/payments/{id}/checkout": async (auth) => ({ path: `/v1/payments/${(await createPayment(t)).id}/checkout`, init: post({}, auth) }),
  "GET /v1/payments/{id}/seamless": async (auth) => ({ path: `/v1/payments/${(await createPayment(t)).id}/seamless`, init: { headers: auth } }),
  "GET /v1/payment-methods": async (auth) => ({ path: "/v1/payment-methods?currency=MYR&amount=1050", init: { headers: auth } }),
  "POST /v1/payments/{id}/refunds": async (auth) => ({
    path: `/v1/payments/${(await paidPayment()).id}/refunds`,
    init: post({ amount: 100, reason: "Damaged" }, auth, true),
  }),
  "GET /v1/payments/{id}/refunds": async (auth) => ({ path: `/v1/payments/${(await createPayment(t)).id}/refunds`, init: { headers: auth } }),
  "GET /v1/refunds/{id}": async (auth) => ({ path: `/v1/refunds/${(await refundOf((await paidPayment()).id)).id}`, init: { headers: auth } }),
  "GET /v1/events": async (auth) => ({ path: `/v1/events?type=${eventTypes[1]}`, init: { headers: auth } }),
  "POST /v1/events/{id}/redeliver": async (auth) => ({ path: `/v1/events/${await someEventId()}/redeliver`, init: post({}, auth) }),
  "POST /v1/customers/erase": async (auth) => ({ path: "/v1/customers/erase", init: post({ email: `nobody-${Date.now()}@example.my` }, auth, true) }),
  "POST /jobs/reconcile": async (auth) => ({ path: "/jobs/reconcile", init: { method: "POST", headers: auth } }),
  "POST /jobs/expire": async (auth) => ({ path: "/jobs/expire", init: { method: "POST", headers: auth } }),
  "POST /jobs/deliver": async (auth) => ({ path: "/jobs/deliver", init: { method: "POST", headers: auth } }),
  "POST /jobs/retention": async (auth) => ({ path: "/jobs/retention", init: { method: "POST", headers: auth } }),
};

/** Calls that put an operation in a state it refuses (409, 422), by operation. */
const conflictCalls: Record<string, ((auth: Auth) => Promise<Call>)[]> = {
  "POST /v1/payments": [
    // The same order while its first payment is open: 409 order_has_payment.
    async (auth) => {
      const first = paymentBody();
      await t.app.request("/v1/payments", post(first, auth, true));
      return { path: "/v1/payments", init: post(first, auth, true) };
    },
    // The same Idempotency-Key with another body: 422 idempotency_key_reused.
    async (auth) => {
      const key = newKey();
      await t.app.request("/v1/payments", jsonRequest("POST", paymentBody(), { ...auth, "Idempotency-Key": key }));
      return { path: "/v1/payments", init: jsonRequest("POST", paymentBody(), { ...auth, "Idempotency-Key": key }) };
    },
  ],
  "POST /v1/payments/{id}/cancel": [async (auth) => ({ path: `/v1/payments/${(await paidPayment()).id}/cancel`, init: post({}, auth, true) })],
  "POST /v1/payments/{id}/checkout": [async (auth) => ({ path: `/v1/payments/${(await paidPayment()).id}/checkout`, init: post({}, auth) })],
  "GET /v1/payments/{id}/seamless": [async (auth) => ({ path: `/v1/payments/${(await paidPayment()).id}/seamless`, init: { headers: auth } })],
  "POST /v1/payments/{id}/refunds": [
    async (auth) => ({ path: `/v1/payments/${(await createPayment(t)).id}/refunds`, init: post({}, auth, true) }),
    async (auth) => ({ path: `/v1/payments/${(await paidPayment()).id}/refunds`, init: post({ amount: 1_000_000 }, auth, true) }),
  ],
  "POST /v1/customers/erase": [async (auth) => ({ path: "/v1/customers/erase", init: post({ email: "siti@example.my" }, auth, true) })],
};

/** Every operation of the document as `METHOD /path`, with its entry. */
function operations(): [string, Json][] {
  return Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => [`${method.toUpperCase()} ${path}`, op] as [string, Json]),
  );
}

const withoutAuth = (call: Call): Call => {
  const headers = new Headers(call.init?.headers);
  headers.delete("authorization");
  return { ...call, init: { ...call.init, headers } };
};
const withHeaders = (call: Call, change: (headers: Headers) => void): Call => {
  const headers = new Headers(call.init?.headers);
  change(headers);
  return { ...call, init: { ...call.init, headers } };
};
const unknownIdIn = (path: string) =>
  path.replace(
    /\/(pay|re|evt)_[0-9a-z]+/,
    (_m, prefix: string) => `/${unknownIds[{ pay: "payment", re: "refund", evt: "event" }[prefix as "pay"]!]}`,
  );

/** The schema behind a $ref, or the schema itself. */
const resolve = (schema: Json): Json => (schema?.$ref ? doc.components.schemas[String(schema.$ref).split("/").pop()!]! : schema);

describe("the OpenAPI document against the service's answers", () => {
  it("every operation of the document has a valid call in this test's table", () => {
    expect(
      operations()
        .map(([key]) => key)
        .sort(),
    ).toEqual(Object.keys(validCalls).sort());
  });

  it("every status each operation answers to the probes is declared, errors as Problem documents", { timeout: 300_000 }, async () => {
    const undeclared: string[] = [];
    const seen: Record<string, Set<string>> = {};
    for (const [key, op] of operations()) {
      const declared = Object.keys(op.responses);
      seen[key] = new Set();
      const valid = validCalls[key]!;
      const probes: [string, () => Promise<Call>][] = [
        ["no credentials", async () => withoutAuth(await valid({}))],
        ["a token that does not verify", async () => valid({ Authorization: "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bad" })],
        ["an Authorization that is not Bearer", async () => valid({ Authorization: "Basic dXNlcjpwYXNz" })],
        ...roles.map((role) => [`role ${role}`, async () => valid(await bearer(t, role))] as [string, () => Promise<Call>]),
        [
          "an encoded NUL in the URL",
          async () => {
            const call = await valid(await bearer(t, "admin"));
            return { ...call, path: `${call.path}${call.path.includes("?") ? "&" : "?"}x=%00` };
          },
        ],
      ];
      const accepting = async (): Promise<Auth> => {
        for (const role of roles) {
          const call = await valid(await bearer(t, role));
          if ((await t.app.request(call.path, call.init)).status < 400) return bearer(t, role);
        }
        throw new Error(`${key}: no role gets a success from its valid call`);
      };
      const auth = await accepting();
      if ((op.security ?? []).some((s: Json) => "clientSecret" in s)) {
        probes.push([
          "a client secret",
          async () => {
            const payment = (await (await t.app.request("/v1/payments", post(paymentBody(), await bearer(t), true))).json()) as {
              id: string;
              client_secret: string;
            };
            const call = await valid({ "X-Client-Secret": payment.client_secret });
            return { ...call, path: call.path.replace(/pay_[0-9a-z]+/, payment.id) };
          },
        ]);
        probes.push(["a wrong client secret", async () => valid({ "X-Client-Secret": "cs_wrong" })]);
      }
      if (key.includes("{id}"))
        probes.push([
          "an unknown id",
          async () => {
            const call = await valid(auth);
            return { ...call, path: unknownIdIn(call.path) };
          },
        ]);
      if (op.requestBody) {
        probes.push([
          "a body with an unknown field",
          async () => {
            const call = await valid(auth);
            return { ...call, init: { ...call.init, body: JSON.stringify({ unexpected: true }) } };
          },
        ]);
        probes.push([
          "a body that is not JSON",
          async () => {
            const call = await valid(auth);
            return { ...call, init: { ...call.init, body: "{" } };
          },
        ]);
      }
      if (key.startsWith("POST ")) {
        probes.push([
          "a body over 1 MB",
          async () => {
            const call = await valid(auth);
            return { ...call, init: { ...call.init, body: JSON.stringify({ padding: "x".repeat(1024 * 1024) }) } };
          },
        ]);
      }
      if ((op.parameters ?? []).some((p: Json) => p.in === "query")) {
        probes.push([
          "a query out of range",
          async () => {
            const call = await valid(auth);
            return { ...call, path: `${call.path.split("?")[0]}?limit=0&amount=-1&currency=XXX&status=nope&type=nope` };
          },
        ]);
      }
      if ((op.parameters ?? []).some((p: Json) => p.in === "header" && p.name === "idempotency-key")) {
        probes.push(["no Idempotency-Key", async () => withHeaders(await valid(auth), (h) => h.delete("idempotency-key"))]);
      }
      for (const [index, conflict] of (conflictCalls[key] ?? []).entries()) probes.push([`conflict ${index + 1}`, () => conflict(auth)]);

      for (const [probe, make] of probes) {
        const call = await make();
        const res = await t.app.request(call.path, call.init);
        const status = String(res.status);
        seen[key].add(status);
        if (!declared.includes(status)) undeclared.push(`${key} answered ${status} to ${probe}; it declares ${declared.join(", ")}`);
        const type = res.headers.get("content-type") ?? "";
        if (res.status >= 400) {
          expect(type, `${key} ${probe}`).toContain("application/problem+json");
          const body = (await res.json()) as Json;
          expect(ProblemSchema.safeParse(body).success, `${key} ${probe}: ${JSON.stringify(body)}`).toBe(true);
          expect(body.status).toBe(res.status);
          expect(Object.keys(op.responses[status]?.content ?? { "application/problem+json": 1 })).toContain("application/problem+json");
        } else {
          const content = op.responses[status]?.content;
          expect(Object.keys(content ?? {}), `${key} ${probe}`).toContain("application/json");
          expect(type).toContain("application/json");
          const schema = resolve(content["application/json"].schema);
          const body = (await res.json()) as Json;
          for (const field of schema.required ?? []) expect(body, `${key} ${probe}: ${field}`).toHaveProperty(field);
        }
      }
      // Each operation answered its success status to its valid call.
      expect(
        [...seen[key]].some((s) => s.startsWith("2")),
        `${key} saw ${[...seen[key]]}`,
      ).toBe(true);
    }
    if (process.env.OPENAPI_PROBE_TABLE)
      console.log(
        Object.entries(seen)
          .map(([key, statuses]) => `${key}: ${[...statuses].sort().join(" ")}`)
          .join("\n"),
      );
    expect(undeclared).toEqual([]);
  });

  it("declares the 429 that creating payments answers past its rate limit, with Retry-After", async () => {
    const limited = await createTestApp({ env: { RATE_LIMIT_PAYMENTS_PER_MINUTE: "1" } });
    try {
      // A caller of its own: the limit's counter is per token sub, in the Redis every test file shares.
      const auth = await bearer(limited, "service", `shop-limited-${randomUUID()}`);
      const statuses: number[] = [];
      for (let i = 0; i < 2; i++) statuses.push((await limited.app.request("/v1/payments", post(paymentBody(), auth, true))).status);
      const res = await limited.app.request("/v1/payments", post(paymentBody(), auth, true));
      expect([...statuses, res.status]).toEqual([201, 429, 429]);
      expect(ProblemSchema.safeParse(await res.json()).success).toBe(true);
      const declared = doc.paths["/v1/payments"]!.post!.responses["429"];
      expect(declared.content["application/problem+json"].schema.$ref).toBe("#/components/schemas/Problem");
      expect(Object.keys(declared.headers)).toEqual(["Retry-After"]);
      expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    } finally {
      await limited.close();
    }
  });

  // A closed handle fails every query with an error that is not a lost connection: 500, not 503.
  it("declares what each operation answers when its database fails", { timeout: 120_000 }, async () => {
    const down = await createTestApp();
    const undeclared: string[] = [];
    try {
      await down.database.handle.close();
      for (const [key, op] of operations()) {
        const [method, template] = key.split(" ") as [string, string];
        const path = template.replace(
          "{id}",
          key.includes("/refunds/") ? unknownIds.refund! : key.includes("/events/") ? unknownIds.event! : unknownIds.payment!,
        );
        for (const role of roles) {
          const init: RequestInit = method === "POST" ? post({}, await bearer(down, role), true) : { headers: await bearer(down, role) };
          const res = await down.app.request(path, init);
          if (process.env.OPENAPI_PROBE_TABLE) console.log(`down: ${key} as ${role}: ${res.status}`);
          if (!Object.keys(op.responses).includes(String(res.status))) undeclared.push(`${key} as ${role} answered ${res.status}`);
          if (res.status >= 400) expect(res.headers.get("content-type")).toContain("application/problem+json");
        }
      }
    } finally {
      await down.close().catch(() => {});
    }
    expect(undeclared).toEqual([]);
  });

  it("declares error answers as Problem documents in application/problem+json", () => {
    for (const [key, op] of operations()) {
      for (const [status, response] of Object.entries(op.responses as Record<string, Json>)) {
        if (Number(status) < 400) continue;
        expect(Object.keys(response.content), `${key} ${status}`).toEqual(["application/problem+json"]);
        expect(response.content["application/problem+json"].schema.$ref, `${key} ${status}`).toBe("#/components/schemas/Problem");
      }
    }
  });

  it("gives every operation a tag of the document, a summary and a success", () => {
    const tags = doc.tags.map((tag) => tag.name);
    for (const [key, op] of operations()) {
      expect(op.tags?.length, key).toBeGreaterThan(0);
      for (const tag of op.tags) expect(tags, key).toContain(tag);
      expect(op.summary, key).toBeTruthy();
      expect(
        Object.keys(op.responses).some((s) => s.startsWith("2")),
        key,
      ).toBe(true);
    }
    for (const tag of doc.tags) expect(tag.description, tag.name).toBeTruthy();
  });

  it("explains authentication and lists every error code in its introduction", async () => {
    const { errorCatalog } = await import("../../lib/core/errors.js");
    for (const code of Object.keys(errorCatalog)) expect(doc.info.description).toContain(`\`${code}\``);
    for (const role of roles) expect(doc.info.description).toContain(`\`${role}\``);
    expect(doc.info.description).toContain("client_secret");
  });
});

describe("the outgoing webhooks in the document", () => {
  it("has one entry per event type, with the Standard Webhooks headers and a { type, timestamp, data } payload", () => {
    expect(Object.keys(doc.webhooks).sort()).toEqual([...eventTypes].sort());
    for (const type of eventTypes) {
      const op = doc.webhooks[type]!.post!;
      expect(op.tags).toEqual(["Webhooks"]);
      const headers = op.parameters.filter((p: Json) => p.in === "header").map((p: Json) => [p.name, p.required]);
      expect(headers).toEqual([
        ["webhook-id", true],
        ["webhook-timestamp", true],
        ["webhook-signature", true],
      ]);
      const payload = op.requestBody.content["application/json"].schema;
      expect(payload.required).toEqual(["type", "timestamp", "data"]);
      expect(payload.properties.type.const ?? payload.properties.type.enum?.[0]).toBe(type);
      const data = payload.properties.data;
      const ref = data.$ref ?? data.allOf?.[0]?.$ref ?? "";
      if (type.startsWith("refund.")) {
        expect(ref).toBe("#/components/schemas/Refund");
      } else if (type === "payment.duplicate_charge") {
        expect(JSON.stringify(data)).toContain("duplicate_tran_id");
      } else {
        expect(ref).toBe("#/components/schemas/Payment");
      }
    }
    // The refund's beneficiary is documented masked.
    expect(JSON.stringify(doc.components.schemas.Refund!.properties.beneficiary)).toContain("****6789");
  });

  it("describes the payload the service really sends", async () => {
    const payment = await paidPayment();
    const events = (await (await t.app.request(`/v1/events?payment_id=${payment.id}`, { headers: await bearer(t, "admin") })).json()) as {
      data: { type: string; data: Json }[];
    };
    const succeeded = events.data.find((e) => e.type === "payment.succeeded")!;
    const op = doc.webhooks["payment.succeeded"]!.post!;
    const data = op.requestBody.content["application/json"].schema.properties.data;
    const schema = resolve(data.$ref ? data : (data.allOf?.[0] ?? data));
    for (const field of schema.required) expect(succeeded.data, field).toHaveProperty(field);
    for (const field of Object.keys(succeeded.data)) expect(Object.keys(schema.properties), field).toContain(field);
  });
});
