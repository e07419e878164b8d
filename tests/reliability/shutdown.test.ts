import { randomBytes } from "node:crypto";
import net from "node:net";
import { and, eq, like } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobs } from "../../drizzle/schema.js";
import { claimDueJobs, enqueueJob } from "../../lib/jobs/queue.js";
import { createTestDatabase, realPostgresUrl, type TestDatabase } from "../support/databases.js";
import { formPost, signedReport } from "../support/fiuu.js";
import { bearerFor, configOf, deploymentEnv, killAll, lockWaiters, startReplica, type Replica } from "../support/replicas.js";
import { eventually, figure } from "../support/timing.js";

// SIGTERM as Kubernetes sends it on a rolling update: the pod stops accepting connections,
// finishes what it was doing — requests in flight and jobs it started — hands back jobs it had
// claimed but not started, and exits 0 before the grace period (30 s) ends.

const realServers = Boolean(realPostgresUrl && process.env.TEST_REDIS_HOST);

/** Whether a new TCP connection to the port is refused. */
const refusesConnections = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });

describe.skipIf(!realServers)("SIGTERM under load", () => {
  let database: TestDatabase;
  let admin: postgres.Sql;
  let env: Record<string, string>;
  let replica: Replica;
  const sub = `shop-shutdown-${randomBytes(4).toString("hex")}`;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = postgres(database.url!, { max: 2, onnotice: () => {} });
    env = deploymentEnv({ databaseUrl: database.url!, extra: { DB_MAX_CONNECTIONS: "24", FIUU_TIMEOUT: "10s" } });
    replica = await startReplica("terminated", env);
  }, 90_000);

  afterAll(async () => {
    await killAll(replica ? [replica] : []);
    await admin?.end({ timeout: 5 });
    await database?.drop();
  });

  it("answers every request in flight, finishes its started jobs, hands back the rest, and exits 0", async () => {
    const auth = await bearerFor(env, sub);
    const json = { ...auth, "content-type": "application/json" };
    const body = (orderId: string) =>
      JSON.stringify({ order_id: orderId, amount: 1500, currency: "MYR", description: "Roti canai", customer: { name: "Hafiz", email: "hafiz@example.my" } });
    const prefix = `S-${Date.now()}`;

    // Payments to read and to report on while the process shuts down.
    const existing: { id: string; gateway: { order_id: string } }[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${replica.url}/v1/payments`, { method: "POST", body: body(`${prefix}-old-${i}`), headers: { ...json, "Idempotency-Key": `k-${prefix}-old-${i}` } });
      expect(res.status).toBe(201);
      existing.push((await res.json()) as (typeof existing)[number]);
    }

    // Every request of the burst waits in the database until after SIGTERM, on the payments
    // table locked here.
    const lockedOrders = Array.from({ length: 5 }, (_, i) => `${prefix}-new-${i}`);
    let releaseLocks!: () => void;
    const held = new Promise<void>((resolve) => (releaseLocks = resolve));
    let locksTaken!: () => void;
    const taken = new Promise<void>((resolve) => (locksTaken = resolve));
    const holder = admin.begin(async (tx) => {
      await tx`lock table payments in access exclusive mode`;
      locksTaken();
      await held;
    });

    try {
      await taken;
      type Outcome = { what: string; status?: number; code?: string; error?: string };
      const send = (what: string, url: string, init?: RequestInit): Promise<Outcome> =>
        fetch(url, init).then(
          async (res) => {
            const text = await res.text();
            const code = res.status === 503 ? (JSON.parse(text) as { code?: string }).code : undefined;
            if (res.status === 503) expect(res.headers.get("retry-after")).toBeTruthy();
            return { what, status: res.status, code };
          },
          (error: Error) => ({ what, error: `${error.message} ${String((error.cause as Error | undefined)?.message ?? "")}` }),
        );
      const config = configOf(env);
      const burst = [
        ...lockedOrders.map((orderId) =>
          send("create", `${replica.url}/v1/payments`, { method: "POST", body: body(orderId), headers: { ...json, "Idempotency-Key": `k-${orderId}` } }),
        ),
        ...existing.flatMap((p) => [
          send("read", `${replica.url}/v1/payments/${p.id}`, { headers: auth }),
          send("list", `${replica.url}/v1/payments?limit=5`, { headers: auth }),
          send("report", `${replica.url}/webhooks/fiuu/notify`, formPost(signedReport(config.fiuu, { orderid: p.gateway.order_id, status: "22", amount: "15.00", nbcb: "2" }))),
        ]),
      ];
      await eventually(async () => (await lockWaiters(admin, new URL(database.url!).pathname.slice(1))) >= burst.length, 15_000);

      // Jobs the process claims and is working on: IPN echoes to a Fiuu that takes 3 s to answer.
      const fault = await fetch(`${replica.url}/sandbox/fiuu/_control/faults`, { method: "POST", body: JSON.stringify({ mode: "slow", delayMs: 3_000 }), headers: { "content-type": "application/json" } });
      expect(fault.status).toBe(200);
      const kind = "ipn_echo";
      // More than a batch runs at once (16), so some are claimed but not started when SIGTERM comes.
      for (let i = 0; i < 24; i++) {
        await enqueueJob(database.handle.db, { kind, payload: { fields: { tranID: `90000000${i}`, treq: "0" } }, dedupeKey: `${prefix}-echo-${i}` });
      }
      const ours = and(eq(jobs.kind, kind), like(jobs.dedupeKey, `${prefix}-echo-%`));
      const claimed = await eventually(async () => {
        const rows = await database.handle.db.select().from(jobs).where(ours);
        return rows.every((r) => r.lockedUntil !== null) && rows;
      }, 10_000, 20);

      const signalledAt = Date.now();
      replica.child.kill("SIGTERM");
      // It stops accepting connections at once, on all three ports.
      await eventually(async () => (await refusesConnections(replica.ports.main)) && (await refusesConnections(replica.ports.health)), 5_000, 25);
      const refusedAfterMs = Date.now() - signalledAt;
      await new Promise((r) => setTimeout(r, 500));
      releaseLocks();

      const outcomes = await Promise.all(burst);
      const exit = await replica.exited;
      const exitedAfterMs = Date.now() - signalledAt;
      figure(`SIGTERM: new connections refused after ${refusedAfterMs} ms, exit ${exit.code} after ${exitedAfterMs} ms, ${outcomes.length} requests in flight`);

      // Every request in flight got a complete answer: its real outcome, or a clean 503.
      for (const outcome of outcomes) {
        expect(outcome.error, JSON.stringify(outcome)).toBeUndefined();
        if (outcome.status === 503) expect(outcome.code).toBe("unavailable");
        else expect(outcome.status, JSON.stringify(outcome)).toBe(outcome.what === "create" ? 201 : 200);
      }
      expect(outcomes.filter((o) => o.what === "create").map((o) => o.status)).toEqual(lockedOrders.map(() => 201));
      expect(exit).toEqual({ code: 0, signal: null });
      expect(exitedAfterMs).toBeLessThan(30_000);
      const committed = await admin<{ n: number }[]>`select count(*)::int as n from payments where order_id like ${`${prefix}-new-%`}`;
      expect(committed[0]!.n).toBe(lockedOrders.length);
      expect(replica.logs.some((l) => l.msg === "stopped")).toBe(true);

      // Jobs: none is left locked by the dead process. Those it had started are done; those it had
      // claimed but not started were handed back unlocked, their attempt uncounted, and can be
      // claimed at once by another replica.
      const rows = await database.handle.db.select().from(jobs).where(ours);
      expect(rows.map((r) => r.id).sort()).toEqual(claimed.map((r) => r.id).sort());
      const now = new Date();
      expect(rows.filter((r) => r.status === "pending" && r.lockedUntil !== null && r.lockedUntil > now)).toEqual([]);
      expect(rows.filter((r) => r.status === "failed")).toEqual([]);
      const done = rows.filter((r) => r.status === "done");
      const handedBack = rows.filter((r) => r.status === "pending");
      expect(done.length).toBeGreaterThan(0);
      expect(handedBack.length).toBeGreaterThan(0);
      for (const row of handedBack) expect(row).toMatchObject({ lockedUntil: null, attempts: 0 });
      const reclaimed = await claimDueJobs(database.handle.db, { kinds: [kind], limit: 50, lockMs: 60_000, now });
      expect(reclaimed.map((j) => j.id)).toEqual(expect.arrayContaining(handedBack.map((r) => r.id)));
      figure(`SIGTERM: ${done.length} started jobs finished, ${handedBack.length} claimed jobs handed back`);
    } finally {
      releaseLocks();
      await holder;
    }
  }, 60_000);
});
