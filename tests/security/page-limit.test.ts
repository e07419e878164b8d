import { randomBytes, randomInt } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../lib/app/app.js";
import type { AppDeps } from "../../lib/domain/deps.js";
import { queryRows } from "../../lib/adapters/db/client.js";
import { localFiuuSandbox } from "../../lib/adapters/fiuu/sandbox/mount.js";
import { openRedis } from "../../lib/adapters/redis/index.js";
import { startNodeServer } from "../../lib/app/server.js";
import { createTestApp, testConfig, type TestContext } from "../support/app.js";
import { createTestDatabase } from "../support/databases.js";
import { signedReport } from "../support/fiuu.js";
import { createPayment } from "../support/flow.js";
import { sleep } from "../support/timing.js";

// The pages anyone can reach without a token — /pay/:id, /pay/:id/result and Fiuu's return URL —
// share one budget per client address (RATE_LIMIT_PAGES_PER_MINUTE, 120 a minute), answered 429
// problem+json with Retry-After beyond it, failing open without Redis. A return whose skey
// verifies is applied and the shopper sent on whatever the budget says.
//
// Served over a real socket as behind one trusted proxy (TRUSTED_PROXIES=1), so a test can be
// many clients: the client address is the last X-Forwarded-For hop. Each test stands in a minute
// of its own, far from the real clock, so counters in a shared real Redis never meet.

const perMinute = 120;
let clock = new Date();
let minuteStart = 0;
/** A minute nobody else uses, `second` seconds into it. */
const freshMinute = (second = 10) => {
  minuteStart = (4_102_444_800 + randomInt(0, 50_000_000) * 60) * 1000;
  clock = new Date(minuteStart + second * 1000);
};
const advance = (ms: number) => {
  clock = new Date(clock.getTime() + ms);
};

let t: TestContext;
let server: ServerType;
let base: string;
beforeAll(async () => {
  t = await createTestApp({ now: () => clock, env: { TRUSTED_PROXIES: "1" } });
  ({ server, base } = await listen(t.deps));
}, 60_000);
afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await t?.close();
});

async function listen(deps: AppDeps) {
  const app = createApp(deps, { fiuuSandbox: localFiuuSandbox(deps.config) });
  const s = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(started));
  });
  return { server: s, base: `http://127.0.0.1:${(s.address() as AddressInfo).port}` };
}

const newClient = () => `2001:db8:${randomBytes(2).toString("hex")}::${randomBytes(2).toString("hex")}`;
const get = (path: string, client: string, at = base) => fetch(`${at}${path}`, { headers: { "X-Forwarded-For": client }, redirect: "manual" });

type Payment = { id: string; checkout_url: string; client_secret: string; gateway: { order_id: string } };
const newPayment = async () => (await createPayment(t)) as unknown as Payment;
const payPath = (p: Payment) => new URL(p.checkout_url).pathname + new URL(p.checkout_url).search;
const statusOf = async (id: string) =>
  (await queryRows<{ status: string }>(t.database.handle.db, sql`select status from payments where id = ${id}`))[0]!.status;

async function expectRateLimited(res: Response, retryAfter: string) {
  expect(res.status).toBe(429);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  expect(res.headers.get("retry-after")).toBe(retryAfter);
  expect(await res.json()).toMatchObject({ status: 429, code: "rate_limited" });
}

/** Spends a client's whole page budget on the result page. */
async function spend(client: string, payment: Payment) {
  for (let i = 0; i < perMinute; i++) {
    const res = await get(`/pay/${payment.id}/result`, client);
    await res.arrayBuffer();
    expect(res.status).toBe(200);
  }
}

describe("the public pages' limit", () => {
  it(`lets a client have ${perMinute} pages a minute, then answers 429 problem+json with the seconds left; other clients are untouched`, async () => {
    freshMinute(10);
    const payment = await newPayment();
    const client = newClient();
    await spend(client, payment);
    await expectRateLimited(await get(`/pay/${payment.id}/result`, client), "50");
    expect((await get(`/pay/${payment.id}/result`, newClient())).status).toBe(200);
    advance(50_000);
    expect((await get(`/pay/${payment.id}/result`, client)).status).toBe(200);
  });

  it("is one budget across /pay/:id, /pay/:id/result and the return URL, and counts wrong secrets and unknown payments too", async () => {
    freshMinute(30);
    const payment = await newPayment();
    const client = newClient();
    const pages = [
      `/pay/${payment.id}/result`,
      payPath(payment),
      `/pay/${payment.id}?client_secret=guess-${randomBytes(8).toString("hex")}`,
      `/pay/pay_doesnotexist${randomBytes(4).toString("hex")}/result`,
    ];
    const seen = new Set<number>();
    for (let i = 0; i < perMinute; i++) {
      const res = await get(pages[i % pages.length]!, client);
      await res.arrayBuffer();
      seen.add(res.status);
    }
    expect([...seen].sort()).toEqual([200, 404]); // the wrong secret looks like an unknown payment
    for (const page of [...pages, "/webhooks/fiuu/return?orderid=x"]) await expectRateLimited(await get(page, client), "30");
  });

  it("applies a return whose skey verifies from a client whose budget is spent, and sends the shopper on; an unsigned one is refused and not stored", async () => {
    freshMinute(20);
    const payment = await newPayment();
    const client = newClient();
    await spend(client, payment);
    const messages = async () =>
      (
        await queryRows<{ n: number }>(
          t.database.handle.db,
          sql`select count(*)::int as n from gateway_messages where fields->>'orderid' = ${payment.gateway.order_id}`,
        )
      )[0]!.n;

    const forged = signedReport(t.deps.config.fiuu, { orderid: payment.gateway.order_id, status: "00", amount: "25.90" }, { secretKey: "guessed" });
    await expectRateLimited(await get(`/webhooks/fiuu/return?${new URLSearchParams(forged)}`, client), "40");
    expect(await messages()).toBe(0);

    const signed = signedReport(t.deps.config.fiuu, { orderid: payment.gateway.order_id, status: "00", amount: "25.90" });
    const returned = await get(`/webhooks/fiuu/return?${new URLSearchParams(signed)}`, client);
    expect(returned.status).toBe(303);
    expect(returned.headers.get("location")).toBe(`${t.deps.config.publicUrl}/pay/${payment.id}/result`);
    expect(await statusOf(payment.id)).toBe("succeeded");
    // As a browser POST too (Fiuu's return is either).
    const posted = await fetch(`${base}/webhooks/fiuu/return`, {
      method: "POST",
      body: new URLSearchParams(signed),
      headers: { "X-Forwarded-For": client, "content-type": "application/x-www-form-urlencoded" },
      redirect: "manual",
    });
    expect(posted.status).toBe(303);
  });

  it("is never met by a shopper: the checkout page, the return, then the result page refreshing every 3 s for 10 minutes", async () => {
    freshMinute(0);
    const payment = await newPayment();
    const client = newClient();
    expect((await get(payPath(payment), client)).status).toBe(200);
    const statuses = new Set<number>();
    for (let second = 0; second < 600; second += 3) {
      const res = await get(`/pay/${payment.id}/result`, client);
      await res.arrayBuffer();
      statuses.add(res.status);
      advance(3_000);
    }
    const signed = signedReport(t.deps.config.fiuu, { orderid: payment.gateway.order_id, status: "22", amount: "25.90" });
    expect((await get(`/webhooks/fiuu/return?${new URLSearchParams(signed)}`, client)).status).toBe(303);
    expect([...statuses]).toEqual([200]);
  });

  it("fails open: with Redis down the pages answer as usual and a warning is logged", async () => {
    freshMinute(10);
    const payment = await newPayment();
    const dead = await openRedis({ kind: "tcp", host: "127.0.0.1", port: 1, db: 0, maxConnections: 1 });
    const down = await listen({ ...t.deps, redis: dead.redis });
    try {
      const warnings = () =>
        t.logs.lines.filter((l) => l.msg === "rate limiter unavailable; letting the request through" && l.limiter === "public_page").length;
      const before = warnings();
      const client = newClient();
      for (let i = 0; i < 3; i++) expect((await get(`/pay/${payment.id}/result`, client, down.base)).status).toBe(200);
      expect((await get(payPath(payment), client, down.base)).status).toBe(200);
      expect(warnings()).toBe(before + 4);
    } finally {
      await new Promise((resolve) => down.server.close(resolve));
      await dead.close();
    }
  });
});

describe("the page limit in the Node server (lib/app/server.ts)", () => {
  it("takes RATE_LIMIT_PAGES_PER_MINUTE and TRUSTED_PROXIES from the environment", async () => {
    const database = await createTestDatabase();
    const dataDir = mkdtempSync(path.join(tmpdir(), "page-limit-"));
    const config = testConfig({
      PORT: "0",
      HEALTH_CHECK_PORT: "0",
      METRICS_ENABLED: "false",
      DATA_DIR: dataDir,
      RATE_LIMIT_PAGES_PER_MINUTE: "5",
      TRUSTED_PROXIES: "1",
      ...(database.url ? { DATABASE_URL: database.url, DB_SSL_MODE: "disable" } : {}),
      ...(process.env.TEST_REDIS_HOST ? { REDIS_HOST: process.env.TEST_REDIS_HOST, REDIS_PORT: process.env.TEST_REDIS_PORT ?? "6379" } : {}),
    });
    const running = await startNodeServer(config);
    try {
      // The window is the real clock's here: start with a few seconds of it left.
      const secondOfMinute = (Date.now() / 1000) % 60;
      if (secondOfMinute > 55) await sleep((61 - secondOfMinute) * 1000);
      const at = `http://127.0.0.1:${running.ports.main}`;
      const client = newClient();
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await get("/pay/pay_nothere/result", client, at)).status);
      expect(statuses).toEqual([404, 404, 404, 404, 404, 429]);
      expect((await get("/pay/pay_nothere/result", newClient(), at)).status).toBe(404);
    } finally {
      await running.stop();
      rmSync(dataDir, { recursive: true, force: true });
      await database.drop();
    }
  }, 60_000);
});
