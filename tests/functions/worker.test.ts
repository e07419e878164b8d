import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { sql } from "drizzle-orm";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signToken } from "../../lib/http/auth/tokens.js";
import type { Config } from "../../lib/core/config.js";
import { queryRows } from "../../lib/adapters/db/client.js";
import { createTestDatabase, type TestDatabase } from "../support/databases.js";
import { formPost, signedReport } from "../support/fiuu.js";
import { startUpstashBridge, type UpstashBridge } from "../support/upstash-bridge.js";

// The functions build in the real Workers runtime: dist/functions/worker.js as `npm run build`
// makes it, run by workerd through Miniflare, on the real Postgres (TCP through cloudflare:sockets)
// and the real Redis (through an Upstash-REST bridge, as a Worker reaches Redis only over HTTP).

const missing = ["TEST_DATABASE_URL", "TEST_REDIS_HOST"].filter((name) => !process.env[name]);
const skipReason = missing.length > 0 ? ` (skipped: needs ${missing.join(" and ")}; workerd reaches only a real Postgres and a real Redis)` : "";

const root = path.resolve(import.meta.dirname, "../..");

/** The runtime settings wrangler.toml deploys with, so the test runs the bundle as Cloudflare would. */
async function wranglerRuntime() {
  const toml = await readFile(path.join(root, "infra/functions/wrangler.toml"), "utf8");
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
  const flags = /^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1];
  if (!date || flags === undefined) throw new Error("wrangler.toml names no compatibility_date or compatibility_flags");
  return { compatibilityDate: date, compatibilityFlags: [...flags.matchAll(/"([^"]+)"/g)].map((m) => m[1]!) };
}

/** A stand-in for Fiuu's payment host that records the IPN echoes it is sent. */
async function startFiuuRecorder() {
  const echoes: { path: string; fields: Record<string, string> }[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    echoes.push({ path: req.url ?? "", fields: Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString("utf8"))) });
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("OK");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    echoes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.skipIf(missing.length > 0)(`the Workers build in workerd${skipReason}`, () => {
  const origin = "http://payments.test";
  const bindings = {
    ENVIRONMENT: "test",
    LOG_LEVEL: "warn",
    PUBLIC_URL: origin,
    JWT_SECRET: randomBytes(32).toString("hex"),
    ENCRYPTION_KEY: randomBytes(32).toString("hex"),
    WEBHOOK_SECRET: `whsec_${randomBytes(24).toString("base64")}`,
    // A merchant of its own, so the shared Redis's query-slot key is this file's alone.
    FIUU_MERCHANT_ID: `SB_worker${randomBytes(4).toString("hex")}`,
    FIUU_VERIFY_KEY: randomBytes(16).toString("hex"),
    FIUU_SECRET_KEY: randomBytes(16).toString("hex"),
    FIUU_RETRY_ATTEMPTS: "0",
    FIUU_TIMEOUT: "5s",
    DB_SSL_MODE: "disable",
  };
  const fiuu = { merchantId: bindings.FIUU_MERCHANT_ID, secretKey: bindings.FIUU_SECRET_KEY } as Config["fiuu"];

  let dir: string;
  let database: TestDatabase;
  let bridge: UpstashBridge;
  let recorder: Awaited<ReturnType<typeof startFiuuRecorder>>;
  let mf: Miniflare;
  let runtime: Awaited<ReturnType<typeof wranglerRuntime>>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "worker-build-"));
    const bundle = path.join(dir, "worker.js");
    await promisify(execFile)(process.execPath, ["infra/functions/build.mjs", bundle], { cwd: root });
    runtime = await wranglerRuntime();
    database = await createTestDatabase();
    bridge = await startUpstashBridge({ host: process.env.TEST_REDIS_HOST!, port: Number(process.env.TEST_REDIS_PORT ?? 6379) });
    recorder = await startFiuuRecorder();
    mf = new Miniflare({
      modules: true,
      scriptPath: bundle,
      modulesRoot: dir,
      ...runtime,
      // String bindings, as `wrangler.toml` [vars] and `wrangler secret put` give them.
      bindings: {
        ...bindings,
        DATABASE_URL: database.url!,
        UPSTASH_REDIS_REST_URL: bridge.url,
        UPSTASH_REDIS_REST_TOKEN: bridge.token,
        FIUU_PAYMENT_URL: recorder.url,
        FIUU_API_URL: recorder.url,
      },
    });
    await mf.ready;
  }, 120_000);

  afterAll(async () => {
    await mf?.dispose();
    await Promise.allSettled([bridge?.close(), recorder?.close(), database?.drop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const call = (pathname: string, init: RequestInit = {}) => mf.dispatchFetch(`${origin}${pathname}`, init as never);
  const serviceToken = () => signToken(bindings.JWT_SECRET, { sub: "shop-worker", role: "service", ttlSeconds: 600 });
  const rows = <T>(query: ReturnType<typeof sql>) => queryRows<T>(database.handle.db, query);

  let payment: { id: string; client_secret: string; gateway: { order_id: string } };
  let tranId: string;

  it("creates a payment, checks out, applies a signed notification and reports the payment succeeded", async () => {
    const auth = { authorization: `Bearer ${await serviceToken()}` };
    const key = `worker-${randomBytes(6).toString("hex")}`;
    const body = JSON.stringify({
      order_id: `W-${Date.now()}`,
      amount: 1050,
      currency: "MYR",
      description: "Nasi lemak",
      customer: { name: "Ali", email: "ali@example.my" },
    });
    const create = () =>
      call("/v1/payments", { method: "POST", body, headers: { ...auth, "content-type": "application/json", "idempotency-key": key } });

    const created = await create();
    expect(created.status).toBe(201);
    payment = (await created.json()) as typeof payment;
    expect(payment).toMatchObject({ status: "created", amount: 1050 });
    // The idempotency record went to Redis through the REST bridge and comes back from it.
    const replay = await create();
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotency-replayed")).toBe("true");
    expect(((await replay.json()) as { id: string }).id).toBe(payment.id);
    expect(bridge.commands).toBeGreaterThan(0);

    const checkout = await call(`/v1/payments/${payment.id}/checkout`, {
      method: "POST",
      headers: { "x-client-secret": payment.client_secret, "content-type": "application/json" },
      body: "{}",
    });
    expect(checkout.status).toBe(200);
    const form = (await checkout.json()) as { method: string; url: string; fields: Record<string, string> };
    expect(form.method).toBe("POST");
    expect(form.url.startsWith(recorder.url)).toBe(true);
    expect(form.fields.orderid).toBe(payment.gateway.order_id);
    expect(form.fields.amount).toBe("10.50");

    const report = signedReport(fiuu, { orderid: payment.gateway.order_id, status: "00", amount: "10.50" });
    tranId = report.tranID!;
    const notified = await call("/webhooks/fiuu/notify", formPost({ ...report, nbcb: "2" }) as never);
    expect(notified.status).toBe(200);
    expect(await notified.text()).toBe("OK");

    // Requests at once share the isolate's app, each on a database pool of its own.
    const reads = await Promise.all(Array.from({ length: 6 }, () => call(`/v1/payments/${payment.id}`, { headers: auth })));
    for (const read of reads) {
      expect(read.status).toBe(200);
      expect(await read.json()).toMatchObject({ id: payment.id, status: "succeeded" });
    }
    const [stored] = await rows<{ status: string; tran_id: string }>(sql`select status, tran_id from payments where id = ${payment.id}`);
    expect(stored).toEqual({ status: "succeeded", tran_id: tranId });
  });

  it("runs a reconcile batch on its cron trigger: the due IPN echo goes to Fiuu and the job is done", async () => {
    expect(payment).toBeDefined();
    const echoJob = sql`select id, status, attempts from jobs where kind = 'ipn_echo' and dedupe_key like ${`ipn_echo:${tranId}:%`}`;
    const [before] = await rows<{ id: number; status: string; attempts: number }>(echoJob);
    expect(before).toMatchObject({ status: "pending", attempts: 0 });

    // Miniflare's Fetcher.scheduled(), typed here as @cloudflare/workers-types would type it.
    const worker = (await mf.getWorker()) as unknown as { scheduled(options: { cron: string; scheduledTime?: Date }): Promise<{ outcome: string }> };
    const outcome = await worker.scheduled({ cron: "* * * * *", scheduledTime: new Date() });
    expect(outcome.outcome).toBe("ok");

    const [after] = await rows<{ id: number; status: string; attempts: number }>(echoJob);
    expect(after).toMatchObject({ id: before!.id, status: "done" });
    const echoes = recorder.echoes.filter((e) => e.fields.tranID === tranId);
    expect(echoes).toHaveLength(1);
    expect(echoes[0]!.path).toBe("/RMS/API/chkstat/returnipn.php");
    expect(echoes[0]!.fields).toMatchObject({ treq: "1", orderid: payment.gateway.order_id, status: "00" });

    // The five-minute trigger runs the expiry sweep and batch; nothing here is past its time.
    expect((await worker.scheduled({ cron: "*/5 * * * *", scheduledTime: new Date() })).outcome).toBe("ok");
    expect((await rows<{ status: string }>(sql`select status from payments where id = ${payment.id}`))[0]!.status).toBe("succeeded");
  });

  it("answers 503 with a problem document, not a crash, when its bindings lack the database", async () => {
    const bare = new Miniflare({
      modules: true,
      scriptPath: path.join(dir, "worker.js"),
      modulesRoot: dir,
      ...runtime,
      bindings: { ...bindings, ENVIRONMENT: "production" },
    });
    try {
      const res = await bare.dispatchFetch(`${origin}/v1/payment-methods`);
      expect(res.status).toBe(503);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      const text = await res.text();
      expect(text).toContain('"code":"unavailable"');
      expect(text).not.toContain(bindings.JWT_SECRET);
    } finally {
      await bare.dispose();
    }
  });
});
