import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Redis, type Requester, type UpstashRequest } from "@upstash/redis";
import { Redis as IORedis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../lib/app/app.js";
import { signToken } from "../../lib/http/auth/tokens.js";
import { assembleDeps, type OwnedDeps } from "../../lib/app/deps.js";
import { nodeOpeners } from "../../lib/app/node-openers.js";
import { formPostOver } from "../../lib/adapters/fiuu/form-post.js";
import { localFiuuSandbox } from "../../lib/adapters/fiuu/sandbox/mount.js";
import { createLogger } from "../../lib/core/logger.js";
import { ioredisRequester } from "../../lib/adapters/redis/ioredis.js";
import { memoryRequester } from "../../lib/adapters/redis/memory.js";
import { LogCapture, newKey, testConfig } from "../support/app.js";
import { formAction, hiddenInputs, submit } from "../support/browser.js";
import { createTestDatabase, type TestDatabase } from "../support/databases.js";
import { freePort } from "../support/process.js";
import { eventually } from "../support/timing.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

// A full flow over HTTP against the service listening on a real socket — create (and its replay),
// checkout page, payment through the local sandbox, IPN echo, refund, webhooks delivered — and then
// everything the service ever sent to Redis (every command's keys and values, recorded on the way
// out, so overwritten and expired values count too) and everything Redis holds at the end (SCAN
// on the real server, in a database index of this file's own) is searched for the customer's
// name, email and mobile and the client secrets: in clear, URL-encoded, base64, base64url or hex.

const redisDb = 13;
const customer = {
  name: `Nur Aisyah Kamal ${randomBytes(3).toString("hex")}`,
  email: `aisyah.${randomBytes(4).toString("hex")}@example.my`,
  mobile: "+60174823916",
};

/** @upstash/redis over a Requester, replies unparsed, as lib/adapters/redis/index.ts builds it. */
class RawRepliesRedis extends Redis {
  constructor(requester: Requester) {
    super(requester);
    this.opts = { automaticDeserialization: false };
  }
}

/** Every command sent, as its parts (name, key, arguments). */
const sent: string[][] = [];
function recording(inner: Requester): Requester {
  return {
    request: (req: UpstashRequest) => {
      const body = req.body as unknown[];
      const commands = req.path?.[0] === "pipeline" || req.path?.[0] === "multi-exec" ? (body as unknown[][]) : [body];
      for (const command of commands) sent.push(command.map(String));
      return inner.request(req);
    },
  };
}

let database: TestDatabase;
let deps: OwnedDeps;
let server: ServerType;
let receiver: WebhookReceiver;
let tcp: IORedis | undefined;
let base: string;
const secrets: string[] = [];

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const webhookSecret = `whsec_${randomBytes(24).toString("base64")}`;
  receiver = await startWebhookReceiver(webhookSecret);
  const config = testConfig({ PUBLIC_URL: base, WEBHOOK_SECRET: webhookSecret, WEBHOOK_URLS: receiver.url("/hooks") });
  database = await createTestDatabase();
  const host = process.env.TEST_REDIS_HOST;
  if (host) {
    tcp = new IORedis({ host, port: Number(process.env.TEST_REDIS_PORT ?? 6379), db: redisDb, maxRetriesPerRequest: 1 });
    await tcp.flushdb();
  }
  const redis = new RawRepliesRedis(recording(tcp ? ioredisRequester(tcp) : memoryRequester()));
  let app: ReturnType<typeof createApp> | undefined;
  deps = await assembleDeps(
    config,
    nodeOpeners({
      logger: await createLogger(config.log, new LogCapture()),
      database: database.handle,
      redis: { redis, kind: tcp ? "tcp" : "memory", close: async () => {} },
      migrate: false,
      fiuuTransport: formPostOver(async (request) => app!.fetch(request)),
    }),
  );
  app = createApp(deps, { fiuuSandbox: localFiuuSandbox(config) });
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app!.fetch, port, hostname: "127.0.0.1" }, () => resolve(s));
  });
  expect((server.address() as AddressInfo).port).toBe(port);
}, 60_000);
afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await receiver?.stop();
  await database?.drop();
  tcp?.disconnect();
});

const token = (role: "service" | "admin" | "system", sub = "redis-shop") =>
  signToken(deps.config.jwtSecret!, { sub, role, ttlSeconds: 600 }).then((t) => `Bearer ${t}`);
const call = async (path: string, init: RequestInit = {}) =>
  fetch(path.startsWith("http") ? path : `${base}${path}`, { redirect: "manual", ...init });
const json = (method: string, body: unknown, headers: Record<string, string>): RequestInit => ({
  method,
  body: JSON.stringify(body),
  headers: { "content-type": "application/json", ...headers },
});
type Created = { id: string; client_secret: string; checkout_url: string; customer: unknown };

async function createPayment(key = newKey()) {
  const body = {
    order_id: `RD-${Date.now()}-${randomBytes(3).toString("hex")}`,
    amount: 2590,
    currency: "MYR",
    description: "Roti canai",
    customer,
    metadata: { basket: "b-1" },
  };
  const res = await call("/v1/payments", json("POST", body, { authorization: await token("service"), "idempotency-key": key }));
  expect(res.status).toBe(201);
  return { payment: (await res.json()) as Created, body, key };
}

describe("a full flow over HTTP", () => {
  let paidId: string;

  beforeAll(async () => {
    // Create, and repeat the create: the replay is read back from Redis.
    const { payment, body, key } = await createPayment();
    secrets.push(payment.client_secret);
    const replay = await call("/v1/payments", json("POST", body, { authorization: await token("service"), "idempotency-key": key }));
    expect(replay.headers.get("idempotency-replayed")).toBe("true");
    expect(((await replay.json()) as Created).client_secret).toBe(payment.client_secret);
    const unpaid = (await createPayment()).payment;
    secrets.push(unpaid.client_secret);
    expect((await call(`/v1/payments/${unpaid.id}`, { headers: { "x-client-secret": unpaid.client_secret } })).status).toBe(200);

    // The shopper: checkout page, the sandbox's hosted page, approve, back through the return URL.
    const page = await (await call(payment.checkout_url)).text();
    const hosted = await (await submit(call, formAction(page), hiddenInputs(page))).text();
    const { tranID } = hiddenInputs(hosted);
    const back = await (
      await submit(call, new URL(formAction(hosted, "sandbox-approve"), base).toString(), { tranID: tranID!, outcome: "approve" })
    ).text();
    const returned = await submit(call, formAction(back), hiddenInputs(back));
    expect(returned.status).toBe(303);
    expect((await call(`/pay/${payment.id}/result`)).status).toBe(200);
    paidId = payment.id;

    // The jobs: IPN echo, webhooks.
    const system = { authorization: await token("system", "cron") };
    await call("/jobs/reconcile", { method: "POST", headers: system });
    await call("/jobs/deliver", { method: "POST", headers: system });

    // A refund, settled by the sandbox, and its webhooks.
    const refund = await call(
      `/v1/payments/${payment.id}/refunds`,
      json("POST", { amount: 500, reason: "one item missing" }, { authorization: await token("service"), "idempotency-key": newKey() }),
    );
    expect(refund.status).toBe(201);
    const { gateway } = (await refund.json()) as { gateway: { ref_id: string } };
    await call(`/sandbox/fiuu/_control/refunds/${gateway.ref_id}`, json("POST", { status: "00" }, {}));
    await call("/jobs/reconcile", { method: "POST", headers: system });
    await call("/jobs/deliver", { method: "POST", headers: system });
    await eventually(() => receiver.hits.some((h) => h.payload?.type === "payment.succeeded"), 10_000);
  }, 120_000);

  it("ran: the payment succeeded, was refunded, and its webhooks were delivered and verified", async () => {
    const res = await call(`/v1/payments/${paidId}`, { headers: { authorization: await token("service") } });
    expect(await res.json()).toMatchObject({ status: "succeeded", amount_refunded: expect.any(Number) });
    expect(receiver.hits.filter((h) => h.verifyError === undefined).map((h) => h.payload?.type)).toContain("payment.succeeded");
    // The search below would see an answer kept for replay: the create's was written.
    expect(sent.some(([name, key]) => name!.toLowerCase() === "set" && key!.startsWith("idempotency:"))).toBe(true);
  });

  it("sent Redis no customer detail and no client secret, in clear or trivially encoded", () => {
    const texts = sent.flat();
    expect(texts.length).toBeGreaterThan(10);
    expect(leaksIn(texts)).toEqual([]);
  });

  it("left in Redis no customer detail and no client secret (every key, SCAN on the real server)", async () => {
    const held: string[] = [];
    if (tcp) {
      let cursor = "0";
      do {
        const [next, keys] = await tcp.scan(cursor, "COUNT", 1000);
        cursor = next;
        for (const key of keys) held.push(key, ((await tcp.type(key)) === "string" ? await tcp.get(key) : JSON.stringify(await tcp.dump(key))) ?? "");
      } while (cursor !== "0");
    } else {
      // The in-process store: every key ever written, as it holds it now.
      for (const key of new Set(sent.map((c) => c[1]!))) held.push(key, (await deps.redis.get<string>(key)) ?? "");
    }
    expect(held.some((text) => text.startsWith("idempotency:"))).toBe(true);
    expect(leaksIn(held)).toEqual([]);
  });

  it("keeps the create's answer sealed with the field cipher (v1.<keyId>.…), and it holds what a replay needs", async () => {
    const records = sent
      .filter(([name, key]) => name!.toLowerCase() === "set" && key!.startsWith("idempotency:"))
      .map((c) => JSON.parse(c[2]!) as Record<string, string>);
    const done = records.filter((r) => r.state === "done");
    expect(done.length).toBeGreaterThanOrEqual(3); // two creates and a refund
    for (const record of done) {
      expect(Object.keys(record).sort()).toEqual(["fingerprint", "sealed", "state"]);
      expect(record.sealed).toMatch(/^v1\.[0-9a-f]{8}\.[\w-]+\.[\w-]+\.[\w-]+$/);
    }
    const opened = done.map((r) => deps.cipher.decrypt(r.sealed!)).join("\n");
    for (const secret of secrets) expect(opened).toContain(secret);
    expect(opened).toContain(customer.email);
  });

  it("the search itself finds each detail in clear, URL-encoded, base64, base64url and hex", () => {
    const answer = JSON.stringify({ customer, client_secret: secrets[0] });
    for (const text of [
      answer,
      encodeURIComponent(answer),
      `x.${Buffer.from(answer).toString("base64")}`,
      Buffer.from(`pad${answer}`).toString("base64url"),
      Buffer.from(answer).toString("hex"),
    ]) {
      expect(leaksIn([text]).length, text.slice(0, 40)).toBeGreaterThanOrEqual(4);
    }
  });
});

/** Which details and secrets appear in any of `texts`, decoded every trivial way. */
function leaksIn(texts: string[]): string[] {
  const needles = new Map<string, string>([
    ["customer name", customer.name],
    ["customer email", customer.email],
    ["customer mobile", customer.mobile],
    ["customer mobile digits", customer.mobile.replace(/\D/g, "")],
    ...secrets.map((s, i) => [`client secret #${i + 1}`, s] as [string, string]),
  ]);
  const found = new Set<string>();
  for (const text of texts) {
    const readings = decodings(text).map((r) => r.toLowerCase());
    for (const [what, needle] of needles) if (readings.some((r) => r.includes(needle.toLowerCase()))) found.add(what);
  }
  return [...found];
}

/** A text and what it reads as URL-decoded, and every run of it read as base64, base64url or hex (at each alignment). */
function decodings(text: string): string[] {
  const out = [text];
  try {
    out.push(decodeURIComponent(text));
  } catch {
    // not URL-encoded
  }
  for (const [run] of text.matchAll(/[A-Za-z0-9+/_-]{12,}={0,2}/g)) {
    for (let shift = 0; shift < 4; shift++) {
      const part = run.slice(shift);
      out.push(Buffer.from(part, "base64").toString("latin1"), Buffer.from(part, "base64url").toString("latin1"));
    }
  }
  for (const [run] of text.matchAll(/[0-9a-fA-F]{12,}/g)) {
    out.push(Buffer.from(run, "hex").toString("latin1"), Buffer.from(run.slice(1), "hex").toString("latin1"));
  }
  return out;
}
