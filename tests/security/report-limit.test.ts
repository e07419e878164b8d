import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../lib/app/app.js";
import { queryRows } from "../../lib/adapters/db/client.js";
import type { Requester, UpstashRequest } from "@upstash/redis";
import { openRedis } from "../../lib/adapters/redis/index.js";
import { rejectedReportBudget } from "../../lib/http/report-limit.js";
import { createTestApp, type TestContext } from "../support/app.js";
import { signedReport } from "../support/fiuu.js";
import { createPayment } from "../support/flow.js";

// Reports on Fiuu's URLs that fail their signature spend their sender's budget (30 a minute per
// client address); over it they are answered 429 and not processed. Valid reports are never
// limited, never wait for Redis, and go through even when the sender's budget is spent.
//
// The app runs in-process here, as behind one trusted proxy (TRUSTED_PROXIES=1): the client
// address is the last X-Forwarded-For hop. tests/security/client-address.test.ts sends the
// same reports over real sockets, where the socket's peer and TRUSTED_PROXIES decide.

let clock = new Date();
const at = (secondOfWindow: number) => {
  const start = Math.floor(Date.now() / 60_000) * 60;
  clock = new Date((start + secondOfWindow) * 1000);
};

let t: TestContext;
beforeAll(async () => {
  t = await createTestApp({ now: () => clock, env: { TRUSTED_PROXIES: "1" } });
}, 60_000);
afterAll(() => t.close());

const { limit } = rejectedReportBudget;
/** A client address of its own per test (in 2001:db8::/32), so counters in a real Redis shared with other files never meet. */
const newIp = () => `2001:db8:${randomBytes(2).toString("hex")}:${randomBytes(2).toString("hex")}::${randomBytes(2).toString("hex")}`;
/** As the trusted proxy forwards a request from `ip`: it appends the address it saw to whatever the client wrote. */
const from = (ip: string, clientWrote: string[] = []) => ({ "X-Forwarded-For": [...clientWrote, ip].join(", ") });

function post(route: string, fields: Record<string, string>, headers: Record<string, string>) {
  return t.app.request(route, {
    method: "POST",
    body: new URLSearchParams(fields),
    headers: { ...headers, "content-type": "application/x-www-form-urlencoded" },
  });
}

type Payment = { id: string; gateway: { order_id: string } };
const forgedFor = (payment: Payment) =>
  signedReport(t.deps.config.fiuu, { orderid: payment.gateway.order_id, status: "00", amount: "25.90", nbcb: "2" }, { secretKey: "guessed" });
const validFor = (payment: Payment, status: "00" | "22" = "00") =>
  signedReport(t.deps.config.fiuu, { orderid: payment.gateway.order_id, status, amount: "25.90", nbcb: "2" });
const forgedRefundNotice = () => ({
  RefundType: "P",
  MerchantID: t.deps.config.fiuu.merchantId!,
  RefID: "RF-nope",
  RefundID: "1",
  TxnID: "1",
  Amount: "1.00",
  Status: "00",
  Signature: "f".repeat(32),
});

const storedMessages = async () => (await queryRows<{ n: number }>(t.database.handle.db, sql`select count(*)::int as n from gateway_messages`))[0]!.n;
const statusOf = async (id: string) =>
  (await queryRows<{ status: string }>(t.database.handle.db, sql`select status from payments where id = ${id}`))[0]!.status;

describe("reports that fail their signature", () => {
  it(`are stored and refused with 400 up to ${limit} a minute per client, then answered 429 with Retry-After and not stored`, async () => {
    at(10);
    const payment = (await createPayment(t)) as unknown as Payment;
    const ip = newIp();
    const before = await storedMessages();
    for (let i = 0; i < limit; i++) expect((await post("/webhooks/fiuu/notify", forgedFor(payment), from(ip))).status).toBe(400);
    expect(await storedMessages()).toBe(before + limit);

    const refused = await post("/webhooks/fiuu/notify", forgedFor(payment), from(ip));
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("50");
    expect(refused.headers.get("content-type")).toBe("application/problem+json");
    expect(((await refused.json()) as { code: string }).code).toBe("rate_limited");
    expect(await storedMessages()).toBe(before + limit);
    expect(await statusOf(payment.id)).toBe("created");
  });

  it("share one budget across the four report URLs, and each client has its own", async () => {
    at(15);
    const payment = (await createPayment(t)) as unknown as Payment;
    const [ip, other] = [newIp(), newIp()];
    const routes = ["/webhooks/fiuu/notify", "/webhooks/fiuu/callback", "/webhooks/fiuu/return", "/webhooks/fiuu/refund"];
    for (let i = 0; i < limit; i++) {
      const route = routes[i % routes.length]!;
      const res = await post(route, route.endsWith("/refund") ? forgedRefundNotice() : forgedFor(payment), from(ip));
      expect(res.status, route).not.toBe(429);
    }
    for (const route of routes) {
      const res = await post(route, route.endsWith("/refund") ? forgedRefundNotice() : forgedFor(payment), from(ip));
      expect(res.status, route).toBe(429);
    }
    expect((await post("/webhooks/fiuu/notify", forgedFor(payment), from(other))).status).toBe(400);
  });

  it("are counted by the hop the trusted proxy wrote, whatever the client wrote before it", async () => {
    at(20);
    const payment = (await createPayment(t)) as unknown as Payment;
    const ip = newIp();
    for (let i = 0; i < limit; i++) await post("/webhooks/fiuu/notify", forgedFor(payment), from(ip, [`198.51.100.${i}`, "unknown", newIp()]));
    expect((await post("/webhooks/fiuu/notify", forgedFor(payment), from(ip, ["203.0.113.77"]))).status).toBe(429);
  });

  it("get a fresh budget in the next window", async () => {
    at(30);
    const payment = (await createPayment(t)) as unknown as Payment;
    const ip = newIp();
    for (let i = 0; i <= limit; i++) await post("/webhooks/fiuu/notify", forgedFor(payment), from(ip));
    expect((await post("/webhooks/fiuu/notify", forgedFor(payment), from(ip))).status).toBe(429);
    at(61);
    expect((await post("/webhooks/fiuu/notify", forgedFor(payment), from(ip))).status).toBe(400);
  });
});

describe("valid reports", () => {
  it("are processed from a client whose budget is spent", async () => {
    at(40);
    const payment = (await createPayment(t)) as unknown as Payment;
    const ip = newIp();
    for (let i = 0; i <= limit; i++) await post("/webhooks/fiuu/notify", forgedFor(payment), from(ip));
    expect((await post("/webhooks/fiuu/notify", forgedFor(payment), from(ip))).status).toBe(429);

    expect((await post("/webhooks/fiuu/notify", validFor(payment, "22"), from(ip))).status).toBe(200);
    expect(await statusOf(payment.id)).toBe("pending");
    const callback = await post("/webhooks/fiuu/callback", { ...validFor(payment), nbcb: "1" }, from(ip));
    expect(callback.status).toBe(200);
    expect(await callback.text()).toBe("CBTOKEN:MPSTATOK");
    expect(await statusOf(payment.id)).toBe("succeeded");
  });

  it("that are signed but refused for their content do not spend the budget", async () => {
    at(45);
    const payment = (await createPayment(t)) as unknown as Payment;
    const ip = newIp();
    // Signed with the real key but an unknown status: only the key's holder can send it.
    const odd = () => signedReport(t.deps.config.fiuu, { orderid: payment.gateway.order_id, status: "99" as "00", amount: "25.90", nbcb: "2" });
    for (let i = 0; i < limit + 5; i++) expect((await post("/webhooks/fiuu/notify", odd(), from(ip))).status).toBe(400);
  });

  it("never reach Redis: with Redis down they are processed without a single Redis command, and forgeries are refused with 400 (the limiter fails open)", async () => {
    const dead = await openRedis({ kind: "tcp", host: "127.0.0.1", port: 1, db: 0, maxConnections: 1 });
    try {
      // Every Redis command the app sends is recorded before it fails: a method's name, or each
      // command of a pipeline sent to the client's requester (sendPipeline).
      const commands: string[] = [];
      const redis = new Proxy(dead.redis, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver) as unknown;
          if (property === "client") {
            const requester = value as Requester;
            return {
              request: (req: UpstashRequest) => {
                const sent = req.path?.[0] === "pipeline" ? (req.body as unknown[][]) : [req.body as unknown[]];
                commands.push(...sent.map((command) => String(command[0])));
                return requester.request(req);
              },
            };
          }
          if (typeof value !== "function") return value;
          return (...args: unknown[]) => {
            commands.push(String(property));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      const app = createApp({ ...t.deps, redis });
      at(50);
      const payment = (await createPayment(t)) as unknown as Payment;
      const warningsBefore = t.logs.lines.filter((l) => l.msg === "rate limiter unavailable; letting the request through").length;

      const valid = await app.request("/webhooks/fiuu/notify", {
        method: "POST",
        body: new URLSearchParams(validFor(payment)),
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
      expect(valid.status).toBe(200);
      expect(commands).toEqual([]);
      expect(await statusOf(payment.id)).toBe("succeeded");
      expect(t.logs.lines.filter((l) => l.msg === "rate limiter unavailable; letting the request through").length).toBe(warningsBefore);

      const forged = await app.request("/webhooks/fiuu/notify", {
        method: "POST",
        body: new URLSearchParams(forgedFor(payment)),
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
      expect(forged.status).toBe(400);
      expect(commands).toEqual(["incr", "expire"]); // the limiter's, sent together
      const warnings = t.logs.lines.filter((l) => l.msg === "rate limiter unavailable; letting the request through");
      expect(warnings.length).toBe(warningsBefore + 1);
      expect(warnings.at(-1)).toMatchObject({ limiter: "rejected_fiuu_report" });
    } finally {
      await dead.close();
    }
  });
});
