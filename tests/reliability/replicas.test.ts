import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashSecret } from "../../lib/core/crypto.js";
import type { RedisHandle } from "../../lib/adapters/redis/index.js";
import { createTestRedis } from "../support/app.js";
import { createTestDatabase, realPostgresUrl, type TestDatabase } from "../support/databases.js";
import { formPost, newTranId, signedReport } from "../support/fiuu.js";
import {
  bearerFor,
  configOf,
  deploymentEnv,
  killAll,
  holdOrder,
  lockWaiters,
  startReceiver,
  startReplicas,
  type Replica,
} from "../support/replicas.js";
import { eventually, figure } from "../support/timing.js";

// Two and three replicas: separate processes on one PostgreSQL database and one Redis, as
// Kubernetes runs them. Fiuu's reports and a shop's retries may land on any replica at the same
// moment; money must still be recorded once.

const realServers = Boolean(realPostgresUrl && process.env.TEST_REDIS_HOST);

describe.skipIf(!realServers)(
  "replicas on one database and Redis (needs TEST_DATABASE_URL and TEST_REDIS_HOST: three processes share one real PostgreSQL and Redis; runs in CI's real-servers pass)",
  () => {
    let database: TestDatabase;
    let databaseName: string;
    let admin: postgres.Sql;
    let redis: RedisHandle;
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    let env: Record<string, string>;
    let replicas: Replica[] = [];
    // A caller of its own, so no other test file's idempotency keys or rate-limit counters can meet ours.
    const sub = `shop-replicas-${randomBytes(4).toString("hex")}`;
    let auth: Record<string, string>;

    beforeAll(async () => {
      database = await createTestDatabase();
      databaseName = new URL(database.url!).pathname.slice(1);
      admin = postgres(database.url!, { max: 3, onnotice: () => {} });
      redis = await createTestRedis();
      receiver = await startReceiver();
      env = deploymentEnv({ databaseUrl: database.url!, webhookUrls: receiver.urls });
      auth = await bearerFor(env, sub);
      const started = Date.now();
      replicas = await startReplicas(3, env);
      figure(`replicas: 3 processes listening ${Date.now() - started} ms after spawn`);
    }, 90_000);

    afterAll(async () => {
      await killAll(replicas);
      await receiver?.close();
      await redis?.close();
      await admin?.end({ timeout: 5 });
      await database?.drop();
    });

    let orders = 0;
    const newOrder = () => `R-${Date.now()}-${++orders}`;
    const paymentBody = (orderId: string) =>
      JSON.stringify({
        order_id: orderId,
        amount: 2590,
        currency: "MYR",
        description: "Nasi lemak",
        customer: { name: "Aishah", email: "aishah@example.my" },
      });
    const create = (replica: Replica, body: string, key: string) =>
      fetch(`${replica.url}/v1/payments`, { method: "POST", body, headers: { ...auth, "content-type": "application/json", "Idempotency-Key": key } });
    const answer = async (res: Response) => ({
      status: res.status,
      replayed: res.headers.get("idempotency-replayed") === "true",
      retryAfter: res.headers.get("retry-after"),
      body: (await res.json()) as { id?: string; code?: string; payment_id?: string; gateway?: { order_id: string } },
    });
    const paymentsOf = (orderId: string) => admin<{ id: string; status: string }[]>`select id, status from payments where order_id = ${orderId}`;

    it("applies the same Fiuu report, sent to every replica at once, exactly once", async () => {
      const orderId = newOrder();
      const created = await answer(await create(replicas[0]!, paymentBody(orderId), `k-${randomBytes(6).toString("hex")}`));
      expect(created.status).toBe(201);
      const paymentId = created.body.id!;
      const config = configOf(env);
      const tranID = newTranId();
      const report = { orderid: created.body.gateway!.order_id, status: "00" as const, amount: "25.90", tranID };
      const notification = signedReport(config.fiuu, { ...report, nbcb: "2" });
      const callback = signedReport(config.fiuu, { ...report, nbcb: "1" });

      // Fiuu's notification and callback for the same transaction, each at all three replicas at once.
      const answers = await Promise.all(
        replicas.flatMap((r) => [
          fetch(`${r.url}/webhooks/fiuu/notify`, formPost(notification)).then(async (res) => ({ status: res.status, body: await res.text() })),
          fetch(`${r.url}/webhooks/fiuu/callback`, formPost(callback)).then(async (res) => ({ status: res.status, body: await res.text() })),
        ]),
      );
      expect(answers.filter((_, i) => i % 2 === 0)).toEqual(replicas.map(() => ({ status: 200, body: "OK" })));
      expect(answers.filter((_, i) => i % 2 === 1)).toEqual(replicas.map(() => ({ status: 200, body: "CBTOKEN:MPSTATOK" })));

      expect(await paymentsOf(orderId)).toEqual([{ id: paymentId, status: "succeeded" }]);
      const events = await admin<{ id: string; type: string }[]>`select id, type from events where payment_id = ${paymentId}`;
      expect(events.map((e) => e.type)).toEqual(["payment.succeeded"]);
      // Two messages (the notification and the callback), each stored once; the other copies counted on their row.
      const outcomes = await admin<{ kind: string; outcome: string; times: number }[]>`
      select kind, outcome, times_received as times from gateway_messages where payment_id = ${paymentId} order by kind`;
      expect(outcomes).toHaveLength(2);
      expect(outcomes.map((o) => o.kind)).toEqual(["callback", "notification"]);
      expect(outcomes.filter((o) => o.outcome === "applied")).toHaveLength(1);
      expect(outcomes.filter((o) => o.outcome === "duplicate")).toHaveLength(1);
      expect(outcomes.reduce((sum, o) => sum + Number(o.times), 0)).toBe(replicas.length * 2);
      const transitions = await admin`select 1 from audit_log where entity_id = ${paymentId} and action = 'payment.succeeded'`;
      expect(transitions).toHaveLength(1);
      const deliveries = await admin<
        { receiver: string }[]
      >`select receiver from event_deliveries where event_id = ${events[0]!.id} order by receiver`;
      expect(deliveries.map((d) => d.receiver)).toEqual([...receiver.urls].sort());
    });

    it("creates one payment when the same Idempotency-Key reaches every replica at once", async () => {
      const seen = { inUse: 0, replayed: 0 };
      for (let round = 0; round < 5; round++) {
        const orderId = newOrder();
        const body = paymentBody(orderId);
        const key = `k-${randomBytes(6).toString("hex")}`;
        const raced = await Promise.all(replicas.map(async (r) => answer(await create(r, body, key))));
        const firsts = raced.filter((a) => a.status === 201 && !a.replayed);
        expect(firsts, JSON.stringify(raced)).toHaveLength(1);
        const id = firsts[0]!.body.id;
        for (const other of raced.filter((a) => a !== firsts[0])) {
          // The others saw the first still running (409, retry shortly) or its stored answer.
          if (other.status === 409) expect(other).toMatchObject({ body: { code: "idempotency_key_in_use" }, retryAfter: "1" });
          else expect(other).toMatchObject({ status: 201, replayed: true, body: { id } });
          seen[other.status === 409 ? "inUse" : "replayed"]++;
        }
        // Retried anywhere afterwards: the stored answer.
        const retried = await Promise.all(replicas.map(async (r) => answer(await create(r, body, key))));
        for (const again of retried) expect(again).toMatchObject({ status: 201, replayed: true, body: { id } });
        expect(await paymentsOf(orderId)).toEqual([{ id, status: "created" }]);
      }
      figure(
        `replicas: same key at 3 replicas x 5 rounds: 5 payments; the other 10 answers were ${seen.inUse} x 409 in use, ${seen.replayed} x replayed 201`,
      );
    });

    it("creates one payment per order when every replica is asked for it at once under different keys", async () => {
      const orderId = newOrder();
      const body = paymentBody(orderId);
      const raced = await Promise.all(replicas.map(async (r) => answer(await create(r, body, `k-${randomBytes(6).toString("hex")}`))));
      const created = raced.filter((a) => a.status === 201);
      expect(created).toHaveLength(1);
      for (const other of raced.filter((a) => a.status !== 201)) {
        expect(other).toMatchObject({ status: 409, body: { code: "order_has_payment", payment_id: created[0]!.body.id } });
      }
      expect(await paymentsOf(orderId)).toHaveLength(1);
    });

    it("lets a retry on another replica succeed once a replica killed in the middle of a create has timed out", async () => {
      const victim = replicas[2]!;
      const orderId = newOrder();
      const body = paymentBody(orderId);
      const key = `k-${randomBytes(6).toString("hex")}`;
      const redisKey = `idempotency:sub:${encodeURIComponent(sub)}:${key}`;

      // Hold the order so the victim's create stops in the database, after it has claimed the key
      // in Redis: "in the middle".
      const holder = await holdOrder(admin, orderId);
      try {
        const inFlight = create(victim, body, key).then(
          (res) => ({ status: res.status }),
          (error: Error) => ({ error: error.message }),
        );
        await eventually(async () => (await lockWaiters(admin, databaseName)) >= 1, 10_000);
        expect(JSON.parse((await redis.redis.get<string>(redisKey))!)).toMatchObject({ state: "running" });
        victim.child.kill("SIGKILL");
        expect(await victim.exited).toMatchObject({ signal: "SIGKILL" });
        // The shop's HTTP client sees the connection die: no answer, so it retries with the same key.
        expect(await inFlight).toHaveProperty("error");
        // The database notices its client is gone and cancels the waiting statement.
        await eventually(async () => (await lockWaiters(admin, databaseName)) === 0, 10_000);
      } finally {
        await holder.release();
      }

      // Another replica refuses the retry while the dead replica's claim lasts (30 s).
      const [a, b] = replicas;
      const refused = await answer(await create(a!, body, key));
      expect(refused).toMatchObject({ status: 409, retryAfter: "1", body: { code: "idempotency_key_in_use" } });
      const ttl = await redis.redis.pttl(redisKey);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(30_000);
      // Age the claim instead of waiting out the 30 s: as if the replica had died 28.5 s ago.
      await redis.redis.pexpire(redisKey, 1_500);
      const agedAt = Date.now();
      const refusals: number[] = [];
      const succeeded = await eventually(
        async () => {
          const retry = await answer(await create(b!, body, key));
          if (retry.status === 409) {
            expect(retry.body.code).toBe("idempotency_key_in_use");
            refusals.push(retry.status);
            return undefined;
          }
          return retry;
        },
        10_000,
        250,
      );
      expect(succeeded).toMatchObject({ status: 201, replayed: false });
      expect(refusals.length).toBeGreaterThan(0);
      figure(
        `replicas: SIGKILL mid-create: retries refused 409 (${refusals.length + 1} times) while the claim lasted; the first retry after it expired created the payment ${Date.now() - agedAt - 1_500} ms later`,
      );
      // The retry after that, on any replica, is the stored answer; the order has one payment.
      expect(await answer(await create(a!, body, key))).toMatchObject({ status: 201, replayed: true, body: { id: succeeded.body.id } });
      expect(await paymentsOf(orderId)).toEqual([{ id: succeeded.body.id, status: "created" }]);
    });

    it("keeps one payment per order when a replica died after committing but before storing its answer", async () => {
      const [a, b] = replicas;
      const orderId = newOrder();
      const body = paymentBody(orderId);
      const key = `k-${randomBytes(6).toString("hex")}`;
      const redisKey = `idempotency:sub:${encodeURIComponent(sub)}:${key}`;
      // What the dead replica left: its payment committed (created here under another key) and its
      // "running" claim on the shop's key in Redis, with 1.5 s of its 30 s left.
      const committed = await answer(await create(a!, body, `k-${randomBytes(6).toString("hex")}`));
      expect(committed.status).toBe(201);
      const fingerprint = hashSecret(`POST\n/v1/payments\n${body}`);
      await redis.redis.set(redisKey, { state: "running", fingerprint, owner: "dead-replica" }, { px: 1_500 });

      expect(await answer(await create(b!, body, key))).toMatchObject({ status: 409, body: { code: "idempotency_key_in_use" } });
      const settled = await eventually(
        async () => {
          const retry = await answer(await create(a!, body, key));
          return retry.body.code === "idempotency_key_in_use" ? undefined : retry;
        },
        10_000,
        250,
      );
      // The retry runs once the claim expires, and the order's lock and check refuse a second payment.
      expect(settled).toMatchObject({ status: 409, body: { code: "order_has_payment", payment_id: committed.body.id } });
      expect(await paymentsOf(orderId)).toEqual([{ id: committed.body.id, status: "created" }]);
    });
  },
);
