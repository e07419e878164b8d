import { randomBytes, randomInt } from "node:crypto";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../lib/app/app.js";
import { ConfigError, loadConfig, parseTrustedProxies, type Config, type TrustedProxies } from "../../lib/core/config.js";
import { queryRows } from "../../lib/adapters/db/client.js";
import { localFiuuSandbox } from "../../lib/adapters/fiuu/sandbox/mount.js";
import { normalizeAddress, resolveClientAddress } from "../../lib/http/client-address.js";
import { rejectedReportBudget } from "../../lib/http/report-limit.js";
import { createTestApp, type TestContext } from "../support/app.js";
import { signedReport } from "../support/fiuu.js";
import { createPayment } from "../support/flow.js";

// The client address every per-client limit uses (lib/http/client-address.ts), over real sockets:
// the app is served by @hono/node-server on 127.0.0.1, as lib/app/server.ts serves it, so the peer is
// the socket's. Each test stands in a minute of its own, far from the real clock, so counters in a
// real Redis shared with other test files (and other runs) never meet.

const { limit } = rejectedReportBudget;
let clock = new Date();
/** A minute nobody else uses: somewhere in the 2100s, 10 s into it. */
const freshMinute = () => {
  clock = new Date((4_102_444_800 + randomInt(0, 50_000_000) * 60 + 10) * 1000);
};

let t: TestContext;
beforeAll(async () => {
  t = await createTestApp({ now: () => clock });
}, 60_000);
afterAll(() => t.close());

/** The test app's dependencies under another TRUSTED_PROXIES, listening on a real socket. */
async function listening(trustedProxies: TrustedProxies = t.deps.config.trustedProxies) {
  const deps = { ...t.deps, config: { ...t.deps.config, trustedProxies } as Config };
  const app = createApp(deps, { fiuuSandbox: localFiuuSandbox(deps.config) });
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    post: (path: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
      fetch(`${base}${path}`, {
        method: "POST",
        body: new URLSearchParams(fields),
        headers: { ...headers, "content-type": "application/x-www-form-urlencoded" },
      }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

type Payment = { id: string; gateway: { order_id: string } };
const forgedFor = (payment: Payment) =>
  signedReport(t.deps.config.fiuu, { orderid: payment.gateway.order_id, status: "00", amount: "25.90", nbcb: "2" }, { secretKey: "guessed" });
const storedMessages = async () => (await queryRows<{ n: number }>(t.database.handle.db, sql`select count(*)::int as n from gateway_messages`))[0]!.n;

const randomIpv4 = () => [randomInt(1, 224), randomInt(0, 256), randomInt(0, 256), randomInt(1, 255)].join(".");
const randomIpv6 = () => `2001:db8:${randomBytes(2).toString("hex")}::${randomBytes(2).toString("hex")}`;
/** What a forger writes into X-Forwarded-For: one hop or several, IPv4 or IPv6, now and then with junk. */
function forgedChain(i: number): string {
  const hops = Array.from({ length: 1 + (i % 4) }, (_, j) => ((i + j) % 3 === 0 ? randomIpv6() : randomIpv4()));
  if (i % 7 === 0) hops.push("unknown");
  return hops.join(", ");
}

/** Sends `count` requests, `concurrency` at a time, and tallies their statuses. */
async function tally(count: number, send: (i: number) => Promise<Response>, concurrency = 8): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const res = await send(next++);
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    }),
  );
  return statuses;
}

describe("over a real socket, with TRUSTED_PROXIES unset (the default)", () => {
  it(`answers 1,000 forged reports with 1,000 different X-Forwarded-For chains by the socket's address: ${limit} refused with 400, the other ${1000 - limit} with 429, and only ${limit} stored`, async () => {
    freshMinute();
    expect(t.deps.config.trustedProxies).toEqual({ kind: "none" });
    const server = await listening();
    try {
      const payment = (await createPayment(t)) as unknown as Payment;
      const before = await storedMessages();
      const statuses = await tally(1000, (i) => server.post("/webhooks/fiuu/notify", forgedFor(payment), { "X-Forwarded-For": forgedChain(i) }));
      expect(Object.fromEntries(statuses)).toEqual({ 400: limit, 429: 1000 - limit });
      expect(await storedMessages()).toBe(before + limit);
    } finally {
      await server.close();
    }
  });
});

describe("over a real socket, behind trusted proxies", () => {
  it("TRUSTED_PROXIES=1: counts the hop the proxy appended, whatever the client wrote before it", async () => {
    freshMinute();
    const server = await listening({ kind: "hops", count: 1 });
    try {
      const payment = (await createPayment(t)) as unknown as Payment;
      const [client, other] = [randomIpv4(), randomIpv6()];
      const as = (address: string, i: number) => ({ "X-Forwarded-For": `${forgedChain(i)}, ${address}` });
      const statuses = await tally(200, (i) => server.post("/webhooks/fiuu/notify", forgedFor(payment), as(client, i)));
      expect(Object.fromEntries(statuses)).toEqual({ 400: limit, 429: 200 - limit });
      // Another client behind the same proxy (the same socket peer) has a budget of its own.
      expect((await server.post("/webhooks/fiuu/notify", forgedFor(payment), as(other, 0))).status).toBe(400);
      // A request that came without the proxy's hop is the proxy's (here the socket's) own.
      expect(Object.fromEntries(await tally(limit + 1, () => server.post("/webhooks/fiuu/notify", forgedFor(payment))))).toEqual({
        400: limit,
        429: 1,
      });
    } finally {
      await server.close();
    }
  });

  it("TRUSTED_PROXIES as networks: skips every hop inside them from the right, the socket's first", async () => {
    freshMinute();
    const server = await listening(parseTrustedProxies("127.0.0.0/8, 10.0.0.0/8") as TrustedProxies);
    try {
      const payment = (await createPayment(t)) as unknown as Payment;
      const client = randomIpv4();
      // The client, then two internal proxies (an edge in 10/8 and the ingress), then the socket 127.0.0.1.
      const via = (address: string, i: number) => ({ "X-Forwarded-For": `${forgedChain(i)}, ${address}, 10.${i % 250}.0.1, 10.0.0.${i % 250}` });
      expect(Object.fromEntries(await tally(100, (i) => server.post("/webhooks/fiuu/notify", forgedFor(payment), via(client, i))))).toEqual({
        400: limit,
        429: 100 - limit,
      });
      expect((await server.post("/webhooks/fiuu/notify", forgedFor(payment), via(randomIpv4(), 1))).status).toBe(400);
    } finally {
      await server.close();
    }
  });
});

describe("resolveClientAddress", () => {
  const none = { kind: "none" } as const;
  const one = { kind: "hops", count: 1 } as const;
  const two = { kind: "hops", count: 2 } as const;
  const networks = parseTrustedProxies("10.0.0.0/8, 192.168.1.5, fd00::/8") as TrustedProxies;

  it.each<[string, TrustedProxies, string | undefined, string | undefined, string | undefined]>([
    ["no proxy trusted: the socket, whatever the header says", none, "203.0.113.9", "1.2.3.4", "203.0.113.9"],
    ["one hop: the last hop", one, "10.0.0.2", "1.2.3.4, 198.51.100.7", "198.51.100.7"],
    ["one hop, no header: the socket", one, "10.0.0.2", undefined, "10.0.0.2"],
    ["two hops: the second from the right", two, "10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.9", "198.51.100.7"],
    ["two hops, fewer in the header: the leftmost", two, "10.0.0.2", "198.51.100.7", "198.51.100.7"],
    ["one hop, junk where the proxy's hop should be: the proxy", one, "10.0.0.2", "1.2.3.4, garbage", "10.0.0.2"],
    ["two hops, junk beyond the first: the last address a proxy wrote", two, "10.0.0.2", "junk, 10.0.0.9", "10.0.0.9"],
    ["networks: skipped from the right while inside them", networks, "10.0.0.2", "1.2.3.4, 198.51.100.7, 192.168.1.5, 10.9.9.9", "198.51.100.7"],
    ["networks: an untrusted socket is the client", networks, "203.0.113.9", "1.2.3.4", "203.0.113.9"],
    ["networks: IPv6 with brackets and port, IPv4-mapped", networks, "fd00::1", "1.2.3.4, [2001:DB8::7]:443", "2001:db8::7"],
    ["networks: all trusted: the leftmost", networks, "10.0.0.2", "10.1.1.1", "10.1.1.1"],
    ["no socket (functions), one hop: the platform's hop", one, undefined, "1.2.3.4, 198.51.100.7", "198.51.100.7"],
    ["no socket, no proxy trusted: unknown", none, undefined, "1.2.3.4", undefined],
    ["no socket, networks: unknown", networks, undefined, "198.51.100.7", undefined],
    ["an IPv4 hop with a port", one, "10.0.0.2", "198.51.100.7:5123", "198.51.100.7"],
  ])("%s", (_name, trusted, peer, header, expected) => {
    expect(resolveClientAddress(trusted, peer, header)).toBe(expected);
  });

  it("normalizes addresses and refuses what is not one", () => {
    expect(normalizeAddress("::ffff:127.0.0.1")).toBe("127.0.0.1");
    expect(normalizeAddress(" 2001:DB8::1 ")).toBe("2001:db8::1");
    expect(normalizeAddress("fe80::1%eth0")).toBe("fe80::1");
    for (const junk of ["", "unknown", "_hidden", "1.2.3", "300.1.1.1", "a".repeat(100), "1.2.3.4, 5.6.7.8"])
      expect(normalizeAddress(junk), junk).toBeUndefined();
  });
});

describe("TRUSTED_PROXIES", () => {
  it("reads none, a hop count, networks or cloudflare", () => {
    expect(parseTrustedProxies("")).toEqual({ kind: "none" });
    expect(parseTrustedProxies("none")).toEqual({ kind: "none" });
    expect(parseTrustedProxies("0")).toEqual({ kind: "none" });
    expect(parseTrustedProxies("2")).toEqual({ kind: "hops", count: 2 });
    expect(parseTrustedProxies("Cloudflare")).toEqual({ kind: "cloudflare" });
    expect(parseTrustedProxies("10.0.0.0/8, 192.168.1.5 ,fd00::/8")).toEqual({
      kind: "networks",
      networks: [
        { address: "10.0.0.0", prefix: 8, family: 4 },
        { address: "192.168.1.5", prefix: 32, family: 4 },
        { address: "fd00::", prefix: 8, family: 6 },
      ],
    });
  });

  it.each(["10.0.0.0/33", "fd00::/129", "10.0.0.0/8/1", "ingress", "10.0.0", "17"])("refuses %s at start-up, naming the variable", (value) => {
    expect(() => loadConfig({ TRUSTED_PROXIES: value })).toThrow(ConfigError);
    expect(() => loadConfig({ TRUSTED_PROXIES: value })).toThrow(/TRUSTED_PROXIES/);
  });
});
