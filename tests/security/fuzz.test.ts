import { sql } from "drizzle-orm";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../lib/adapters/db/client.js";
import { skeyFieldNames } from "../../lib/adapters/fiuu/signatures.js";
import { bearer, createTestApp, jsonRequest, newKey, type TestContext } from "../support/app.js";
import { formPost, newTranId, signedReport } from "../support/fiuu.js";
import { createPayment, payThroughSandbox } from "../support/flow.js";

// Hostile input against every JSON and form endpoint: property-based runs (fast-check) with random
// and known-nasty values, then a table of specific hostile payloads. Every answer must be a 4xx
// (or the success the input deserves), never a 5xx, and input that is refused must leave no row
// behind. FUZZ_RUNS overrides the number of runs per property (default 100).

const numRuns = Number(process.env.FUZZ_RUNS ?? 100);

interface Fixture {
  id: string;
  client_secret: string;
  amount: number;
  gateway: { order_id: string };
}

let t: TestContext;
let service: Record<string, string>;
let admin: Record<string, string>;
let open: Fixture; // created, never paid: checkout target
let paid: Fixture; // succeeded through the sandbox: refund target
let channels: string[];

beforeAll(async () => {
  // As behind one trusted proxy, so freshIp() below (the proxy's X-Forwarded-For hop) is the client address.
  t = await createTestApp({ env: { TRUSTED_PROXIES: "1" } });
  service = await bearer(t, "service", `fuzz-shop-${process.pid}-${Date.now()}`, 3600);
  admin = await bearer(t, "admin", "fuzz-ops", 3600);
  open = (await createPayment(t)) as unknown as Fixture;
  const toPay = (await createPayment(t, { amount: 500_000 })) as unknown as Fixture & { checkout_url: string };
  await payThroughSandbox(t, toPay.checkout_url, "approve");
  paid = toPay;
  const methods = (await (await t.app.request("/v1/payment-methods")).json()) as { data: { code: string }[] };
  channels = methods.data.map((m) => m.code);
}, 60_000);
afterAll(() => t.close());

// ---------------------------------------------------------------------------------------------
// What the database holds, in one query: row counts, and a digest of every payment's state.

interface Snapshot {
  payments: number;
  refunds: number;
  audit: number;
  events: number;
  jobs: number;
  messages: number;
  believed_messages: number;
  payment_state: string;
}

async function snapshot(): Promise<Snapshot> {
  const [row] = await queryRows<Snapshot>(
    t.database.handle.db,
    sql`select (select count(*) from payments)::int as payments,
               (select count(*) from refunds)::int as refunds,
               (select count(*) from audit_log)::int as audit,
               (select count(*) from events)::int as events,
               (select count(*) from jobs)::int as jobs,
               (select count(*) from gateway_messages)::int as messages,
               (select count(*) from gateway_messages where signature_valid or outcome <> 'rejected')::int as believed_messages,
               (select md5(coalesce(string_agg(concat_ws(':', id, status, channel, amount_refunded, amount_refund_reserved, tran_id, updated_at), ',' order by id), ''))
                  from payments) as payment_state`,
  );
  return row!;
}

/** The snapshot without what a rejected report may legitimately add: its own stored row and a (deduplicated) requery. */
const withoutMessages = ({ messages: _m, jobs: _j, ...rest }: Snapshot) => rest;

function expectNot5xx(res: Response, label: string) {
  if (res.status >= 500) throw new Error(`${label} answered ${res.status}`);
}

// ---------------------------------------------------------------------------------------------
// Arbitraries.

const surrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const nastyStrings = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udfffy",
  "x'; drop table payments; --",
  "' OR '1'='1",
  '"; DELETE FROM audit_log; --',
  "%00",
  "%ff%fe",
  "../../etc/passwd",
  "<script>alert(1)</script>",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal attack string
  "${jndi:ldap://x/a}",
  "{{7*7}}",
  "__proto__",
  "constructor",
  "prototype",
  "NaN",
  "Infinity",
  "-0",
  "1e308",
  "18446744073709551616",
  "\u202e\u0645",
  "\ufeff",
  "\r\n",
  "x".repeat(3000),
  "😀".repeat(50),
  "null",
  "[]",
  "{}",
];
const poisons = ["\u0000", "\u0000", "\ud800", "\udfff", "x'; drop table payments; --", "\u202e", "\ufeff", "%00", "😀", "\r\n"];
const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...nastyStrings) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.string({ maxLength: 8 }), fc.constantFrom(...poisons), fc.string({ maxLength: 8 })).map(([a, p, b]) => a + p + b),
  },
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.oneof(fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 1 }), surrogate), maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 30 }) },
);
const hostileNumber = fc.oneof(
  fc.constantFrom<unknown>(1e308, 2 ** 64, -0, 0, -1, 0.5, 1e-308, Number.MAX_SAFE_INTEGER + 2, 100_000_001, "NaN", "1e308", "2**64", "-0", "1050"),
  fc.double(),
  fc.integer(),
);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 2, arbitrary: hostileNumber },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
const hostileKey = fc.oneof(fc.constantFrom("__proto__", "constructor", "prototype", "toString", "amount_override", "status"), hostileString);

/** One change to a valid body: a hostile value at a path (or an unknown key), a poison character inside a string, or a field removed. */
type Mutation =
  | { kind: "set"; path: string[]; value: unknown }
  | { kind: "poison"; path: string[]; poison: string; at: number }
  | { kind: "delete"; path: string[] };

function applyMutations(base: Record<string, unknown>, mutations: Mutation[]): Record<string, unknown> {
  const body = structuredClone(base);
  for (const m of mutations) {
    let parent: Record<string, unknown> = body;
    for (const key of m.path.slice(0, -1)) {
      // Own properties only: walking through "__proto__" must never reach Object.prototype.
      const next = Object.hasOwn(parent, key) ? parent[key] : undefined;
      if (next === null || typeof next !== "object" || Array.isArray(next)) {
        Object.defineProperty(parent, key, { value: {}, enumerable: true, writable: true, configurable: true });
      }
      parent = parent[key] as Record<string, unknown>;
    }
    const last = m.path.at(-1)!;
    if (m.kind === "delete") delete parent[last];
    else if (m.kind === "set") Object.defineProperty(parent, last, { value: m.value, enumerable: true, writable: true, configurable: true });
    else if (typeof parent[last] === "string") {
      const text = parent[last] as string;
      const at = m.at % (text.length + 1);
      parent[last] = text.slice(0, at) + m.poison + text.slice(at);
    }
  }
  return body;
}

/** Mostly a valid body with one to three mutations, sometimes the valid body itself. */
function mutated(base: fc.Arbitrary<Record<string, unknown>>, paths: string[][], stringPaths: string[][]) {
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("set" as const),
        path: fc.oneof(
          fc.constantFrom(...paths),
          hostileKey.map((k) => [k]),
        ),
        value: hostileValue,
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("poison" as const),
        path: fc.constantFrom(...stringPaths),
        poison: fc.constantFrom(...poisons),
        at: fc.nat(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), path: fc.constantFrom(...paths) }) },
  );
  const mutations = fc.oneof(
    { weight: 1, arbitrary: fc.constant<Mutation[]>([]) },
    { weight: 4, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
  );
  return fc.tuple(base, mutations).map(([body, ms]) => applyMutations(body, ms));
}

const jsonContentTypes = [
  "application/json",
  "application/json; charset=utf-8",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data",
  "application/xml",
  undefined,
];
/** A request body: mostly JSON of the given shape, sometimes raw garbage, under assorted content types. */
function bodyOf(shape: fc.Arbitrary<unknown>) {
  return fc.record({
    body: fc.oneof(
      { weight: 6, arbitrary: shape.map((value) => JSON.stringify(value) ?? "") },
      { weight: 1, arbitrary: fc.constantFrom("", "{", "[]", "null", "1e400", '{"amount":-0}', "[{}]", '{"a":1,"a":2}', "\u0000") },
      { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
    ),
    contentType: fc.oneof(
      { weight: 6, arbitrary: fc.constant<string | undefined>("application/json") },
      { weight: 2, arbitrary: fc.constantFrom(...jsonContentTypes) },
    ),
  });
}
function requestOf(method: string, body: { body: string; contentType?: string }, headers: Record<string, string>): RequestInit {
  return { method, body: body.body, headers: { ...(body.contentType ? { "content-type": body.contentType } : {}), ...headers } };
}

/** A path segment: a hostile string percent-encoded, or raw percent garbage. */
const wellFormed = (s: string) => s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
const pathSegment = fc.oneof(
  { weight: 3, arbitrary: hostileString.map((s) => encodeURIComponent(wellFormed(s))) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "%ff",
      "%c0%80",
      "%ed%a0%80",
      "%",
      "%zz",
      "%2f..%2f",
      "%00",
      "pay_%00",
      "..",
      `pay_${"0".repeat(26)}`,
      `pay_${"z".repeat(80)}`,
    ),
  },
);
/** A Latin-1 header value (what fetch lets a client send), up to 300 characters. */
const headerValue = fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 300 });

/** A query string: known keys with hostile values, hostile keys, or raw garbage. */
function queryOf(keys: string[], values: string[]) {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .array(
          fc.tuple(
            fc.oneof(fc.constantFrom(...keys), hostileKey.map(String)),
            fc.oneof(fc.constantFrom(...values), hostileString, hostileNumber.map(String)),
          ),
          { maxLength: 5 },
        )
        .map((pairs) => new URLSearchParams(pairs.map(([k, v]) => [wellFormed(k), wellFormed(v)])).toString()),
    },
    {
      weight: 1,
      arbitrary: fc.string({ unit: fc.constantFrom("%", "&", "=", "+", "[", "]", ";", "a", "0", "f", "F", "limit", "status", "x"), maxLength: 30 }),
    },
  );
}

// ---------------------------------------------------------------------------------------------

describe("fuzzing the JSON endpoints", () => {
  it("POST /v1/payments: random bodies answer 201 and store exactly what was sent, or 4xx and store nothing", async () => {
    const valid = fc.record(
      {
        order_id: fc.stringMatching(/^[A-Za-z0-9-]{1,12}$/).map((id) => `fz-${id}`),
        amount: fc.integer({ min: 1, max: 100_000_000 }),
        currency: fc.constantFrom("MYR", "SGD"),
        description: fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }),
        customer: fc.record(
          {
            name: fc.constantFrom("Siti", "Mei Ling"),
            email: fc.constantFrom("a@example.my", "siti@example.com"),
            mobile: fc.constant("+60174823915"),
          },
          { requiredKeys: ["name", "email"] },
        ),
        channel: fc.constantFrom("fpx", "credit"),
        return_url: fc.constantFrom("https://shop.example/thanks", "http://shop.example/r?a=1"),
        metadata: fc.dictionary(fc.stringMatching(/^[a-z_]{1,8}$/), fc.string({ maxLength: 20 }), { maxKeys: 3 }),
      },
      { requiredKeys: ["order_id", "amount", "currency", "description", "customer"] },
    );
    const stringPaths = [
      ["order_id"],
      ["description"],
      ["customer", "name"],
      ["customer", "email"],
      ["customer", "mobile"],
      ["channel"],
      ["return_url"],
      ["metadata", "cart"],
    ];
    const paths = [
      ...stringPaths,
      ["amount"],
      ["currency"],
      ["customer"],
      ["metadata"],
      ["metadata", "__proto__"],
      ["metadata", "constructor"],
      ["customer", "__proto__"],
      ["__proto__"],
      ["constructor"],
    ];
    const body = mutated(valid, paths, stringPaths);
    const key = fc.oneof({ weight: 5, arbitrary: fc.constant<string | null>(null) }, { weight: 1, arbitrary: headerValue });
    await fc.assert(
      fc.asyncProperty(bodyOf(body), key, async (request, hostileKey) => {
        const before = await snapshot();
        const res = await t.app.request("/v1/payments", requestOf("POST", request, { ...service, "Idempotency-Key": hostileKey ?? newKey() }));
        expectNot5xx(res, "POST /v1/payments");
        if (res.status === 201 && res.headers.get("idempotency-replayed") !== "true") {
          const sent = JSON.parse(request.body) as Record<string, any>;
          const created = (await res.json()) as Record<string, any>;
          expect(created.order_id).toBe(sent.order_id);
          expect(created.amount).toBe(sent.amount);
          expect(created.description).toBe(sent.description.trim());
          const [row] = await queryRows<{ order_id: string; description: string; metadata: Record<string, string> }>(
            t.database.handle.db,
            sql`select order_id, description, metadata from payments where id = ${created.id}`,
          );
          expect(row!.order_id).toBe(sent.order_id);
          expect(row!.description).toBe(sent.description.trim());
          // zod never copies a "__proto__" key into what it returns; every other key is kept as sent.
          const { ["__proto__"]: _dropped, ...metadata } = { ...(sent.metadata ?? {}) } as Record<string, string>;
          expect(row!.metadata).toEqual(metadata);
          const after = await snapshot();
          expect(after.payments).toBe(before.payments + 1);
          expect(after.audit).toBe(before.audit + 1);
        } else {
          expect([201, 400, 409, 413, 415, 422]).toContain(res.status);
          expect(await snapshot()).toEqual(before);
        }
      }),
      { numRuns },
    );
  });

  it("POST /v1/payments/:id/cancel: random ids and bodies answer 400 or 404 and change nothing", async () => {
    await fc.assert(
      fc.asyncProperty(pathSegment, bodyOf(hostileValue), async (id, request) => {
        const before = await snapshot();
        const res = await t.app.request(`/v1/payments/${id}/cancel`, requestOf("POST", request, { ...service, "Idempotency-Key": newKey() }));
        expectNot5xx(res, `cancel ${id}`);
        expect([400, 404]).toContain(res.status);
        expect(await snapshot()).toEqual(before);
      }),
      { numRuns },
    );
  });

  it("POST /v1/payments/:id/checkout: random bodies and credentials start a checkout only when valid, else change nothing", async () => {
    const credentials = fc.oneof(
      { weight: 3, arbitrary: fc.constant(() => service) },
      { weight: 3, arbitrary: fc.constant(() => ({ "X-Client-Secret": open.client_secret })) },
      { weight: 1, arbitrary: headerValue.map((secret) => () => ({ "X-Client-Secret": secret })) },
      { weight: 1, arbitrary: fc.constant(() => ({})) },
    );
    const valid = fc.record({ channel: fc.constantFrom("fpx", "credit", "maybank2u", "FPX_M2E") }, { requiredKeys: [] });
    const body = fc.oneof(
      { weight: 4, arbitrary: mutated(valid, [["channel"], ["amount"], ["__proto__"]], [["channel"]]) },
      { weight: 1, arbitrary: hostileValue },
    );
    const target = fc.oneof({ weight: 4, arbitrary: fc.constant<string | null>(null) }, { weight: 1, arbitrary: pathSegment });
    await fc.assert(
      fc.asyncProperty(bodyOf(body), credentials, target, async (request, who, id) => {
        const before = await snapshot();
        const res = await t.app.request(`/v1/payments/${id ?? open.id}/checkout`, requestOf("POST", request, who()));
        expectNot5xx(res, "checkout");
        if (res.status === 200) {
          const sent = JSON.parse(request.body) as Record<string, unknown>;
          expect(Object.keys(sent).filter((k) => k !== "channel")).toEqual([]);
          if (sent.channel !== undefined) expect(channels).toContain(sent.channel);
          const form = (await res.json()) as { fields: Record<string, string> };
          expect(form.fields.orderid).toBe(open.gateway.order_id);
          expect(form.fields.amount).toBe("25.90");
        } else {
          expect([400, 401, 404, 409, 413, 415]).toContain(res.status);
          expect(await snapshot()).toEqual(before);
        }
      }),
      { numRuns },
    );
  });

  it("GET /pay/:id (the checkout page): random ids and client secrets answer 4xx and change nothing", async () => {
    const id = fc.oneof(fc.constant(open.id), fc.constant(paid.id), pathSegment);
    const secret = fc.oneof(
      hostileString.map((s) => encodeURIComponent(wellFormed(s))),
      fc.constantFrom("%ff", "%00", "a%2F..%2Fb", paid.client_secret),
    );
    await fc.assert(
      fc.asyncProperty(id, secret, async (pageId, clientSecret) => {
        fc.pre(!(pageId === open.id && clientSecret === open.client_secret));
        const before = await snapshot();
        const res = await t.app.request(`/pay/${pageId}?client_secret=${clientSecret}`);
        expectNot5xx(res, "checkout page");
        // The paid payment's own secret finds a payment whose checkout is over: 409.
        expect([400, 401, 404, 409]).toContain(res.status);
        expect(await snapshot()).toEqual(before);
      }),
      { numRuns },
    );
  });

  it("POST /v1/payments/:id/refunds: random bodies refund exactly what was asked, or answer 4xx and change nothing", async () => {
    const valid = fc.record(
      { amount: fc.integer({ min: 1, max: 3000 }), reason: fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 }) },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      { weight: 4, arbitrary: mutated(valid, [["amount"], ["reason"], ["currency"], ["__proto__"]], [["reason"]]) },
      { weight: 1, arbitrary: hostileValue },
    );
    const target = fc.oneof(
      { weight: 4, arbitrary: fc.constant<string | null>(null) },
      { weight: 1, arbitrary: fc.constant(open.id) },
      { weight: 1, arbitrary: pathSegment },
    );
    await fc.assert(
      fc.asyncProperty(bodyOf(body), target, async (request, id) => {
        const before = await snapshot();
        const res = await t.app.request(
          `/v1/payments/${id ?? paid.id}/refunds`,
          requestOf("POST", request, { ...service, "Idempotency-Key": newKey() }),
        );
        expectNot5xx(res, "refund");
        if (res.status === 201) {
          const sent = JSON.parse(request.body) as { amount?: number };
          const refund = (await res.json()) as { amount: number; payment_id: string };
          expect(refund.payment_id).toBe(paid.id);
          if (sent.amount !== undefined) expect(refund.amount).toBe(sent.amount);
          expect((await snapshot()).refunds).toBe(before.refunds + 1);
        } else {
          // 409: the unpaid payment; 422: more than is left to refund.
          expect([400, 404, 409, 413, 415, 422]).toContain(res.status);
          expect(await snapshot()).toEqual(before);
        }
      }),
      { numRuns },
    );
    const [{ refunded }] = (await queryRows<{ refunded: number }>(
      t.database.handle.db,
      sql`select coalesce(sum(amount), 0)::int as refunded from refunds where payment_id = ${paid.id} and status <> 'failed'`,
    )) as [{ refunded: number }];
    expect(refunded).toBeLessThanOrEqual(paid.amount);
  });

  it("GET /v1/payments: random query strings answer 200 with only matching rows, or 400", async () => {
    const query = queryOf(
      ["order_id", "status", "limit", "starting_after"],
      ["created", "succeeded", "1", "100", "0", "-1", "1e308", open.id, "' OR '1'='1"],
    );
    await fc.assert(
      fc.asyncProperty(query, async (q) => {
        const before = await snapshot();
        const res = await t.app.request(`/v1/payments?${q}`, { headers: service });
        expectNot5xx(res, `list ?${q}`);
        expect([200, 400]).toContain(res.status);
        if (res.status === 200) {
          const list = (await res.json()) as { data: { order_id: string; status: string }[] };
          const params = new URLSearchParams(q);
          if (params.get("order_id")) for (const p of list.data) expect(p.order_id).toBe(params.get("order_id"));
          if (params.get("status")) for (const p of list.data) expect(p.status).toBe(params.get("status"));
        }
        expect(await snapshot()).toEqual(before);
      }),
      { numRuns },
    );
  });

  it("GET /v1/payment-methods: random query strings answer 200 or 400", async () => {
    const query = queryOf(["currency", "amount"], ["MYR", "SGD", "myr", "100", "0", "-5", "1e308", "0x10", "NaN"]);
    await fc.assert(
      fc.asyncProperty(query, async (q) => {
        const res = await t.app.request(`/v1/payment-methods?${q}`);
        expectNot5xx(res, `payment-methods ?${q}`);
        expect([200, 400]).toContain(res.status);
      }),
      { numRuns },
    );
  });

  it("GET /v1/events: random query strings answer 200 with only matching events, or 400", async () => {
    const query = queryOf(
      ["type", "payment_id", "limit", "starting_after"],
      ["payment.succeeded", "refund.pending", paid.id, "5", "101", "' OR 1=1 --"],
    );
    await fc.assert(
      fc.asyncProperty(query, async (q) => {
        const before = await snapshot();
        const res = await t.app.request(`/v1/events?${q}`, { headers: admin });
        expectNot5xx(res, `events ?${q}`);
        expect([200, 400]).toContain(res.status);
        if (res.status === 200) {
          const list = (await res.json()) as { data: { type: string }[] };
          const type = new URLSearchParams(q).get("type");
          if (type) for (const e of list.data) expect(e.type).toBe(type);
        }
        expect(await snapshot()).toEqual(before);
      }),
      { numRuns },
    );
  });
});

// ---------------------------------------------------------------------------------------------

let clientIp = 0;
/** Each forged report from its own address, so the limiter of rejected reports stays out of the way here. */
const freshIp = () => ({ "X-Forwarded-For": `198.18.${(++clientIp >> 8) & 255}.${clientIp & 255}` });

type Encoding = "urlencoded" | "multipart" | "json" | "none";
function formRequest(fields: Record<string, string>, encoding: Encoding): RequestInit {
  const headers = freshIp();
  switch (encoding) {
    case "urlencoded":
      return {
        method: "POST",
        body: new URLSearchParams(Object.entries(fields)),
        headers: { ...headers, "content-type": "application/x-www-form-urlencoded" },
      };
    case "multipart": {
      const form = new FormData();
      for (const [name, value] of Object.entries(fields)) form.append(name, value);
      return { method: "POST", body: form, headers };
    }
    case "json":
      return { method: "POST", body: JSON.stringify(fields), headers: { ...headers, "content-type": "application/json" } };
    case "none":
      return { method: "POST", body: new URLSearchParams(Object.entries(fields)).toString(), headers };
  }
}

const reportFieldNames = [
  ...skeyFieldNames,
  "skey",
  "nbcb",
  "channel",
  "error_code",
  "error_desc",
  "extraP",
  "RefID",
  "RefundID",
  "TxnID",
  "Amount",
  "Status",
  "Signature",
  "MerchantID",
  "RefundType",
];
const formFields = fc.dictionary(
  fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...reportFieldNames) }, { weight: 1, arbitrary: hostileKey.map(String) }),
  fc.oneof(hostileString, hostileNumber.map(String), fc.constantFrom("00", "11", "22", "25.90", "MYR", "SB_testshop", "1", "2")),
  { maxKeys: 12 },
);
const hex32 = fc.stringMatching(/^[0-9a-f]{32}$/);
const reportRoutes = ["/webhooks/fiuu/notify", "/webhooks/fiuu/callback", "/webhooks/fiuu/return", "/webhooks/fiuu/refund"] as const;

describe("fuzzing Fiuu's form endpoints", () => {
  it("random form fields with random skeys answer 400 (or the return page's redirect) and never change a payment", async () => {
    const fields = fc.tuple(formFields, fc.oneof(hex32, hostileString), fc.constantFrom(null, "open", "paid")).map(([f, skey, names]) => ({
      ...f,
      skey: wellFormed(skey),
      Signature: wellFormed(skey),
      ...(names === "open" ? { orderid: open.gateway.order_id } : names === "paid" ? { orderid: paid.gateway.order_id } : {}),
    }));
    const encoding = fc.constantFrom<Encoding>("urlencoded", "urlencoded", "multipart", "json", "none");
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...reportRoutes), fields, encoding, async (route, form, how) => {
        const before = await snapshot();
        const res = await t.app.request(route, formRequest(form, how));
        expectNot5xx(res, `${route} (${how})`);
        expect(route.endsWith("/return") ? [303, 400] : [400]).toContain(res.status);
        const after = await snapshot();
        expect(withoutMessages(after)).toEqual(withoutMessages(before));
        expect(after.messages - before.messages).toBeLessThanOrEqual(1);
      }),
      { numRuns: Math.round(numRuns * 1.5) },
    );
  });

  it("a correctly signed report with one signed field changed is refused and changes nothing", async () => {
    const fiuu = () => t.deps.config.fiuu;
    const tamper = fc.record({
      field: fc.constantFrom(...skeyFieldNames, "skey"),
      value: fc.oneof(hostileString, hex32, fc.constantFrom("00", "25.9", "25.900", "MYR", "myr", "SB_other", "25.90 ")),
      route: fc.constantFrom("/webhooks/fiuu/notify", "/webhooks/fiuu/callback", "/webhooks/fiuu/return"),
    });
    await fc.assert(
      fc.asyncProperty(tamper, async ({ field: name, value, route }) => {
        const report = signedReport(fiuu(), { orderid: open.gateway.order_id, status: "00", amount: "25.90", tranID: newTranId(), nbcb: "2" });
        fc.pre(report[name] !== wellFormed(value));
        report[name] = wellFormed(value);
        const before = await snapshot();
        const res = await t.app.request(route, formRequest(report, "urlencoded"));
        expectNot5xx(res, `${route} tampered ${name}`);
        expect([303, 400]).toContain(res.status);
        const after = await snapshot();
        expect(withoutMessages(after)).toEqual(withoutMessages(before));
      }),
      { numRuns },
    );
    const [status] = await queryRows<{ status: string }>(t.database.handle.db, sql`select status from payments where id = ${open.id}`);
    expect(status!.status).toBe("created");
  });
});

// ---------------------------------------------------------------------------------------------

const paymentBody = (overrides: Record<string, unknown> = {}) => ({
  order_id: `H-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
  amount: 1050,
  currency: "MYR",
  description: "Kopi O",
  customer: { name: "Siti Aminah", email: "siti@example.my" },
  ...overrides,
});

/** The JSON endpoints that take a body, each with the headers it needs. */
const jsonRoutes = () => [
  { name: "POST /v1/payments", path: "/v1/payments", headers: () => ({ ...service, "Idempotency-Key": newKey() }) },
  { name: "POST /v1/payments/:id/checkout", path: `/v1/payments/${open.id}/checkout`, headers: () => ({ "X-Client-Secret": open.client_secret }) },
  { name: "POST /v1/payments/:id/refunds", path: `/v1/payments/${paid.id}/refunds`, headers: () => ({ ...service, "Idempotency-Key": newKey() }) },
];

describe("hostile payloads", () => {
  it("stores SQL-looking strings literally and finds them only by exact match; the tables stay intact", async () => {
    const sqlish = {
      order_id: "x'; drop table payments; --",
      description: "Robert'); DROP TABLE students;--",
      customer: { name: "O'Brien\"; DELETE FROM audit_log; --", email: "o.brien@example.my" },
      metadata: { "k'; --": "1 OR 1=1; TRUNCATE refunds", constructor: "y" },
    };
    const before = await snapshot();
    const res = await t.app.request("/v1/payments", jsonRequest("POST", paymentBody(sqlish), { ...service, "Idempotency-Key": newKey() }));
    expect(res.status).toBe(201);
    const created = (await res.json()) as Record<string, any>;
    const read = (await (await t.app.request(`/v1/payments/${created.id}`, { headers: service })).json()) as Record<string, any>;
    expect(read).toMatchObject({
      order_id: sqlish.order_id,
      description: sqlish.description,
      customer: { name: sqlish.customer.name },
      metadata: sqlish.metadata,
    });

    const byOrder = (await (await t.app.request(`/v1/payments?order_id=${encodeURIComponent(sqlish.order_id)}`, { headers: service })).json()) as {
      data: { id: string }[];
    };
    expect(byOrder.data.map((p) => p.id)).toEqual([created.id]);
    const injected = (await (await t.app.request(`/v1/payments?order_id=${encodeURIComponent("' OR '1'='1")}`, { headers: service })).json()) as {
      data: unknown[];
    };
    expect(injected.data).toEqual([]);

    const after = await snapshot();
    expect(after.payments).toBe(before.payments + 1);
    expect(after.audit).toBe(before.audit + 1);
    expect(after.refunds).toBe(before.refunds);
    const tables = await queryRows<{ table_name: string }>(
      t.database.handle.db,
      sql`select table_name from information_schema.tables where table_schema = 'public'`,
    );
    expect(tables.map((r) => r.table_name)).toEqual(expect.arrayContaining(["payments", "refunds", "audit_log", "gateway_messages"]));
  });

  it("refuses SQL in a report's orderid as naming no payment", async () => {
    const before = await snapshot();
    const res = await t.app.request(
      "/webhooks/fiuu/notify",
      formRequest({ orderid: "' OR '1'='1", status: "00", skey: "0".repeat(32) }, "urlencoded"),
    );
    expect(res.status).toBe(400);
    expect(withoutMessages(await snapshot())).toEqual(withoutMessages(before));
  });

  const twoMegabytes = "x".repeat(2 * 1024 * 1024);
  it.each<[string, () => string, string]>([
    ["POST /v1/payments", () => "/v1/payments", "application/json"],
    ["POST /v1/payments/:id/cancel", () => `/v1/payments/${open.id}/cancel`, "application/json"],
    ["POST /v1/payments/:id/checkout", () => `/v1/payments/${open.id}/checkout`, "application/json"],
    ["POST /v1/payments/:id/refunds", () => `/v1/payments/${paid.id}/refunds`, "application/json"],
    ...reportRoutes.map((route): [string, () => string, string] => [`POST ${route}`, () => route, "application/x-www-form-urlencoded"]),
  ])("answers a 2 MB body to %s with 413 and stores nothing", async (_name, path, contentType) => {
    const before = await snapshot();
    for (const withLength of [false, true]) {
      const headers: Record<string, string> = { ...service, "Idempotency-Key": newKey(), "content-type": contentType, ...freshIp() };
      if (withLength) headers["content-length"] = String(twoMegabytes.length);
      const res = await t.app.request(path(), { method: "POST", body: twoMegabytes, headers });
      expect(res.status).toBe(413);
      expect(((await res.json()) as { code: string }).code).toBe("payload_too_large");
    }
    expect(await snapshot()).toEqual(before);
  });

  it.each([
    ["10,000 nested arrays", "[".repeat(10_000) + "]".repeat(10_000)],
    ["10,000 nested objects", `${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`],
    ["10,000 nested objects in metadata", `{"metadata":${'{"a":'.repeat(10_000)}"x"${"}".repeat(10_001)}`],
    ["100,000 nested arrays", "[".repeat(100_000) + "]".repeat(100_000)],
  ])("answers %s with 400 on every JSON endpoint", async (_name, body) => {
    for (const route of jsonRoutes()) {
      const before = await snapshot();
      const res = await t.app.request(route.path, { method: "POST", body, headers: { ...route.headers(), "content-type": "application/json" } });
      expect(res.status, route.name).toBe(400);
      expect(await snapshot()).toEqual(before);
    }
  });

  it("answers a JSON body that is not UTF-8 with 400 instead of storing replacement characters (regression)", async () => {
    const bytes = (text: string, at: string) => {
      const [head, tail] = text.split(at) as [string, string];
      return Buffer.concat([Buffer.from(head), Buffer.from([0xff, 0xfe, 0xc0, 0x80]), Buffer.from(tail)]);
    };
    const bodies = [
      { route: jsonRoutes()[0]!, body: bytes(JSON.stringify(paymentBody({ description: "Kopi@@" })), "@@") },
      { route: jsonRoutes()[1]!, body: bytes(JSON.stringify({ channel: "fpx@@" }), "@@") },
      { route: jsonRoutes()[2]!, body: bytes(JSON.stringify({ amount: 1, reason: "why@@" }), "@@") },
    ];
    for (const { route, body } of bodies) {
      const before = await snapshot();
      const res = await t.app.request(route.path, { method: "POST", body, headers: { ...route.headers(), "content-type": "application/json" } });
      expect(res.status, route.name).toBe(400);
      expect(((await res.json()) as { detail: string }).detail).toMatch(/UTF-8/);
      expect(await snapshot()).toEqual(before);
    }
  });

  it.each([
    ["1e308", 1e308],
    ["2**64", 2 ** 64],
    ["-0", -0],
    ["0.5", 0.5],
    ["NaN as a string", "NaN"],
    ["Infinity as a string", "Infinity"],
    ["a numeric string", "1050"],
    ["null", null],
    ["an array", [1050]],
  ])("refuses the amount %s with 400 when creating a payment or a refund", async (_name, amount) => {
    for (const [path, body] of [
      ["/v1/payments", paymentBody({ amount })],
      [`/v1/payments/${paid.id}/refunds`, { amount }],
    ] as const) {
      const before = await snapshot();
      const res = await t.app.request(path, jsonRequest("POST", body, { ...service, "Idempotency-Key": newKey() }));
      expect(res.status, path).toBe(400);
      expect(await snapshot()).toEqual(before);
    }
  });

  it.each([
    ["1e400", "1e400"],
    ["-0 literal", "-0"],
    ["NaN token", "NaN"],
    ["18446744073709551616", "18446744073709551616"],
  ])("refuses the raw JSON amount %s with 400", async (_name, literal) => {
    const before = await snapshot();
    const text = JSON.stringify(paymentBody()).replace('"amount":1050', `"amount":${literal}`);
    const res = await t.app.request("/v1/payments", {
      method: "POST",
      body: text,
      headers: { ...service, "Idempotency-Key": newKey(), "content-type": "application/json" },
    });
    expect(res.status).toBe(400);
    expect(await snapshot()).toEqual(before);
  });

  it.each([
    ["order_id", { order_id: "A\u0000B" }],
    ["description", { description: "Kopi\u0000O" }],
    ["customer.name", { customer: { name: "Siti\u0000", email: "siti@example.my" } }],
    ["metadata value", { metadata: { cart: "c\u00001" } }],
    ["metadata key", { metadata: { "c\u0000art": "1" } }],
    ["description with a lone surrogate", { description: "Kopi\ud800O" }],
    ["metadata with a lone surrogate", { metadata: { cart: "\udfff" } }],
  ])("refuses a NUL or lone surrogate in %s with 400, not a database error (regression)", async (_name, overrides) => {
    const before = await snapshot();
    const res = await t.app.request("/v1/payments", jsonRequest("POST", paymentBody(overrides), { ...service, "Idempotency-Key": newKey() }));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_request");
    expect(await snapshot()).toEqual(before);
  });

  it("refuses NUL characters (and lone surrogates) in every other place input enters with 400 (regression)", async () => {
    type Send = () => Response | Promise<Response>;
    const cases: [string, Send][] = [
      [
        "refund reason",
        () =>
          t.app.request(
            `/v1/payments/${paid.id}/refunds`,
            jsonRequest("POST", { amount: 1, reason: "a\u0000b" }, { ...service, "Idempotency-Key": newKey() }),
          ),
      ],
      [
        "refund reason with a lone surrogate",
        () =>
          t.app.request(
            `/v1/payments/${paid.id}/refunds`,
            jsonRequest("POST", { amount: 1, reason: "a\ud800b" }, { ...service, "Idempotency-Key": newKey() }),
          ),
      ],
      ["checkout channel", () => t.app.request(`/v1/payments/${open.id}/checkout`, jsonRequest("POST", { channel: "fpx\u0000" }, service))],
      ["payment id", () => t.app.request("/v1/payments/pay_%00x", { headers: service })],
      ["cancel id", () => t.app.request("/v1/payments/pay_%00x/cancel", { method: "POST", headers: { ...service, "Idempotency-Key": newKey() } })],
      ["list filter", () => t.app.request("/v1/payments?order_id=%00", { headers: service })],
      ["list cursor", () => t.app.request("/v1/payments?starting_after=pay_%00", { headers: service })],
      ["events filter", () => t.app.request("/v1/events?payment_id=%00", { headers: admin })],
      ["payment-methods filter", () => t.app.request("/v1/payment-methods?currency=MYR%00")],
      ["checkout page id", () => t.app.request(`/pay/pay_%00x?client_secret=${open.client_secret}`)],
      ["checkout page secret", () => t.app.request(`/pay/${open.id}?client_secret=%00`)],
      ["result page id", () => t.app.request("/pay/pay_%00x/result")],
      ["return by GET", () => t.app.request(`/webhooks/fiuu/return?orderid=${open.gateway.order_id}%00&skey=x`)],
      ...reportRoutes.map(
        (route) =>
          [`${route} field`, () => t.app.request(route, formRequest({ orderid: "a\u0000", RefID: "b\u0000", skey: "x" }, "urlencoded"))] as [
            string,
            Send,
          ],
      ),
      ...reportRoutes.map(
        (route) =>
          [`${route} multipart field name`, () => t.app.request(route, formRequest({ "or\u0000derid": "a" }, "multipart"))] as [string, Send],
      ),
    ];
    for (const [name, send] of cases) {
      const before = await snapshot();
      const res = await send();
      expect(res.status, name).toBe(400);
      expect(await snapshot(), name).toEqual(before);
    }
  });

  it("refuses a malformed multipart body on Fiuu's URLs with 400, not 500 (regression)", async () => {
    for (const route of reportRoutes) {
      for (const contentType of ["multipart/form-data", "multipart/form-data; boundary=zzz"]) {
        const before = await snapshot();
        const res = await t.app.request(route, { method: "POST", body: "--zzz\r\ngarbage", headers: { "content-type": contentType, ...freshIp() } });
        expect(res.status, `${route} ${contentType}`).toBe(400);
        expect(await snapshot()).toEqual(before);
      }
    }
  });

  it.each([
    ["text/plain", "text/plain"],
    ["a form", "application/x-www-form-urlencoded"],
    ["multipart", "multipart/form-data; boundary=x"],
    ["XML", "application/xml"],
    ["no content type", undefined],
  ])("refuses a JSON endpoint's body sent as %s with 4xx", async (_name, contentType) => {
    for (const route of jsonRoutes()) {
      const before = await snapshot();
      const body = route.path === "/v1/payments" ? JSON.stringify(paymentBody()) : JSON.stringify({ amount: 1 });
      const res = await t.app.request(route.path, {
        method: "POST",
        body,
        headers: { ...route.headers(), ...(contentType ? { "content-type": contentType } : {}) },
      });
      expectNot5xx(res, route.name);
      // The checkout and refund bodies are optional: without a JSON content type the body is not
      // read at all, so the call may go on as an empty one (a checkout, a whole refund of the rest).
      if (route.path === "/v1/payments" || contentType !== undefined) {
        expect([400, 415], `${route.name} ${contentType}`).toContain(res.status);
        expect(await snapshot()).toEqual(before);
      }
    }
  });

  it("refuses a form to Fiuu's report URLs sent as JSON or text with 400 and stores nothing", async () => {
    for (const route of reportRoutes) {
      // Fiuu's refund notice may come as JSON (FIUU.md §4): there a JSON body is read, and an
      // unsigned one is refused and stored as rejected like any forged message (tests/integration/refunds-fiuu).
      const asJson = route === "/webhooks/fiuu/refund" ? [] : [formRequest({ orderid: open.gateway.order_id, skey: "0".repeat(32) }, "json")];
      for (const init of [...asJson, formRequest({ orderid: "x" }, "none")]) {
        const before = await snapshot();
        const res = await t.app.request(route, init);
        expect(res.status, route).toBe(400);
        expect(await snapshot()).toEqual(before);
      }
    }
  });

  it("refuses empty bodies and arrays instead of objects with 400", async () => {
    const cases: [string, string][] = [
      ["empty", ""],
      ["whitespace", "  \n"],
      ["an empty array", "[]"],
      ["an array of a valid body", JSON.stringify([paymentBody()])],
      ["a string", '"hello"'],
      ["null", "null"],
      ["a number", "1050"],
    ];
    for (const [name, body] of cases) {
      for (const route of jsonRoutes()) {
        const before = await snapshot();
        const res = await t.app.request(route.path, { method: "POST", body, headers: { ...route.headers(), "content-type": "application/json" } });
        expect(res.status, `${name} to ${route.name}`).toBe(400);
        expect(await snapshot()).toEqual(before);
      }
    }
  });

  it("refuses __proto__ and constructor where a schema is strict, drops __proto__ from metadata, and pollutes no prototype", async () => {
    const raw = (text: string) =>
      t.app.request("/v1/payments", {
        method: "POST",
        body: text,
        headers: { ...service, "Idempotency-Key": newKey(), "content-type": "application/json" },
      });
    const valid = () => JSON.stringify(paymentBody()).slice(1, -1);
    for (const text of [
      `{"__proto__":{"polluted":true,"amount":1},${valid()}}`,
      `{"constructor":{"prototype":{"polluted":true}},${valid()}}`,
      `{${valid().replace('"customer":{', '"customer":{"__proto__":{"polluted":true},')}}`,
    ]) {
      const before = await snapshot();
      const res = await raw(text);
      expect(res.status, text).toBe(400);
      expect(await snapshot()).toEqual(before);
    }
    // Metadata is a free record: zod never copies a "__proto__" key into it (whatever its value),
    // and every other key, constructor and toString included, is kept as sent.
    for (const protoValue of ['"p"', '{"polluted":true}']) {
      const stripped = await raw(`{"metadata":{"__proto__":${protoValue},"constructor":"c","toString":"s"},${valid()}}`);
      expect(stripped.status).toBe(201);
      const { id, metadata } = (await stripped.json()) as { id: string; metadata: unknown };
      expect(metadata).toEqual({ constructor: "c", toString: "s" });
      const [row] = await queryRows<{ metadata: unknown }>(t.database.handle.db, sql`select metadata from payments where id = ${id}`);
      expect(row!.metadata).toEqual({ constructor: "c", toString: "s" });
    }

    for (const route of reportRoutes) {
      const res = await t.app.request(route, {
        method: "POST",
        body: "__proto__[polluted]=1&constructor[prototype][polluted]=1&__proto__.polluted=1&orderid=x&skey=y",
        headers: { "content-type": "application/x-www-form-urlencoded", ...freshIp() },
      });
      expect(res.status, route).toBe(400);
    }
    await t.app.request(`/v1/payments?__proto__[polluted]=1&constructor[prototype][polluted]=1`, { headers: service });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain("polluted");
  });

  it("refuses very long headers without a 5xx: Idempotency-Key, Authorization, X-Client-Secret, X-Request-Id, X-Forwarded-For", async () => {
    const long = "k".repeat(10_000);
    const before = await snapshot();
    const keyed = await t.app.request("/v1/payments", jsonRequest("POST", paymentBody(), { ...service, "Idempotency-Key": long }));
    expect(keyed.status).toBe(400);
    expect(((await keyed.json()) as { errors: { field: string }[] }).errors[0]!.field).toBe("Idempotency-Key");
    expect(
      (await t.app.request("/v1/payments", jsonRequest("POST", paymentBody(), { Authorization: `Bearer ${long}`, "Idempotency-Key": newKey() })))
        .status,
    ).toBe(401);
    expect((await t.app.request(`/v1/payments/${open.id}`, { headers: { "X-Client-Secret": long } })).status).toBe(401);
    expect((await t.app.request(`/v1/payments/${open.id}/checkout`, jsonRequest("POST", {}, { "X-Client-Secret": long }))).status).toBe(401);
    const traced = await t.app.request("/v1/payment-methods", { headers: { "X-Request-Id": long } });
    expect(traced.status).toBe(200);
    expect(traced.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const forwarded = await t.app.request("/webhooks/fiuu/notify", {
      ...formPost({ orderid: "x", skey: "y" }),
      headers: { "content-type": "application/x-www-form-urlencoded", "X-Forwarded-For": long },
    });
    expect(forwarded.status).toBe(400);
    expect(withoutMessages(await snapshot())).toEqual(withoutMessages(before));
  });

  it("has logged no unhandled error through all of the above", () => {
    const unhandled = t.logs.lines.filter((l) => l.msg === "unhandled error");
    expect(unhandled.map((l) => (l.err as { message?: string } | undefined)?.message)).toEqual([]);
  });
});
