import { createHash, randomUUID } from "node:crypto";
import type { Redis } from "../../lib/adapters/redis/index.js";
import type { Sql } from "postgres";

// The database and Redis statements one request of each scenario issues, sent directly through the
// same drivers (postgres.js, and the service's Redis client: @upstash/redis over ioredis): the
// benchmark's baseline, the irreducible work without HTTP, the framework, JSON, JWT, encryption or
// logging. Keep in step with lib/ (README "Performance" lists them).

export const benchMerchantId = "SB_bench";
const ciphertext = "v1.bench.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA";

/** create_payment: rate-limit counter, idempotency claim, the create statement, the stored answer. */
export async function createPaymentStatements(sql: Sql, redis: Redis, n: number) {
  const key = `bench:${randomUUID()}`;
  const window = `ratelimit:create_payment:bench:${Math.floor(Date.now() / 60_000)}`;
  await redis.pipeline().incr(window).expire(window, 61, "NX").exec();
  await redis.set(`idempotency:${key}`, { state: "running", fingerprint: "x", owner: "y" }, { nx: true, px: 30_000 });
  const id = `pay_base${n}${randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const orderId = `BASE-${id}`;
  const now = new Date().toISOString();
  // lib/domain/payments/create.ts: the holder check, the payment and its audit row in one statement.
  const [outcome] = await sql`with holder as (
      select id, status from payments
      where order_id = ${orderId} and status in ('created', 'pending', 'succeeded', 'conflicted')
      limit 1
    ), inserted as (
      insert into payments (id, order_id, amount, currency, status, channel, description, customer_name, customer_email,
        customer_mobile, return_url, metadata, client_secret_hash, gateway_order_id, amount_refunded, amount_refund_reserved,
        created_by, expires_at, created_at, updated_at)
      select ${id}, ${orderId}, ${1050}::bigint, 'MYR', 'created', ${null}, 'Bench', ${ciphertext}, ${ciphertext}, ${ciphertext}, ${null},
        ${"{}"}::jsonb, ${createHash("sha256").update(id).digest("hex")}, ${id.replace("_", "")}, 0, 0, 'bench',
        ${now}::timestamptz + interval '30 minutes', ${now}::timestamptz, ${now}::timestamptz
      where not exists (select 1 from holder)
      returning id
    ), audited as (
      insert into audit_log (actor, action, entity_type, entity_id, request_id, data)
      select 'service:bench', 'payment.created', 'payment', id, ${key}, ${JSON.stringify({ order_id: orderId, amount: 1050, currency: "MYR", channel: null })}::jsonb
      from inserted
    )
    select (select id from inserted) as created, holder.id as holder_id, holder.status as holder_status
    from (select 1) as one left join holder on true`;
  if (!outcome?.created) throw new Error(`order ${orderId} was refused`);
  await redis.set(`idempotency:${key}`, { state: "done", fingerprint: "x", status: 201, body: "{}" }, { ex: 86_400 });
}

/**
 * fiuu_notify: the report transaction for one created payment (its gateway order id): the locked
 * read, then its writes as one statement, with payloads the size of the service's (the event
 * carries the payment's resource, the message and the echo job the report's fields).
 */
export async function notifyStatements(sql: Sql, gatewayOrderId: string, tranId: string) {
  await sql.begin(async (tx) => {
    const [payment] = await tx`select * from payments where gateway_order_id = ${gatewayOrderId} for update limit 1`;
    if (!payment) throw new Error(`no payment ${gatewayOrderId}`);
    const now = new Date().toISOString();
    const fields = { ...reportFields(gatewayOrderId, tranId), skey: "0123456789abcdef0123456789abcdef" };
    const resource = paymentResource(payment.id as string, payment.order_id as string, gatewayOrderId, tranId, now);
    await tx`with
      s0 as (update payments set status = 'succeeded', tran_id = ${tranId}, appcode = '123456', paid_channel = 'maybank2u',
        paydate = '2026-11-26 12:00:00', updated_at = ${now}::timestamptz where id = ${payment.id}),
      s1 as (insert into events (id, type, payment_id, refund_id, data, created_at) values (${`evt_${tranId}`}, 'payment.succeeded',
        ${payment.id}, ${null}, ${JSON.stringify(resource)}::jsonb, ${now}::timestamptz)),
      s2 as (insert into gateway_messages (kind, payment_id, tran_id, order_id, status, fields, signature_valid, outcome, detail, received_at, fingerprint)
        values ('notification', ${payment.id}, ${tranId}, ${gatewayOrderId}, '00', ${JSON.stringify(fields)}::jsonb, true, 'applied',
        'created → succeeded', ${now}::timestamptz, ${createHash("sha256").update(JSON.stringify(fields)).digest("hex")})
        on conflict (fingerprint) do update set times_received = gateway_messages.times_received + 1, last_received_at = ${now}::timestamptz),
      s3 as (insert into jobs (kind, payload, dedupe_key, run_at, max_attempts) values ('ipn_echo', ${JSON.stringify({ fields })}::jsonb,
        ${`ipn_echo:${tranId}:00:notification`}, ${now}::timestamptz, 100) on conflict (dedupe_key) where status = 'pending' do nothing),
      s4 as (insert into audit_log (actor, action, entity_type, entity_id, request_id, data)
        values ('fiuu:notification', 'payment.succeeded', 'payment', ${payment.id}, ${null},
        ${JSON.stringify({ from: "created", to: "succeeded", tran_id: tranId, fiuu_status: "00" })}::jsonb))
      select 1`;
  });
}

/** A successful notification's fields as Fiuu sends them, before its skey (the values are the bench's). */
export function reportFields(orderId: string, tranId: string): Record<string, string> {
  return {
    tranID: tranId,
    orderid: orderId,
    status: "00",
    domain: benchMerchantId,
    amount: "10.50",
    currency: "MYR",
    appcode: "123456",
    paydate: "2026-11-26 12:00:00",
    channel: "maybank2u",
    nbcb: "2",
  };
}

/** A payment resource as the service's events carry it (masked customer), for the event's size. */
function paymentResource(id: string, orderId: string, gatewayOrderId: string, tranId: string, now: string) {
  return {
    id,
    object: "payment",
    order_id: orderId,
    amount: 1050,
    currency: "MYR",
    status: "succeeded",
    channel: null,
    description: "Bench",
    customer: { name: "S**********h", email: "s***@example.my", mobile: null },
    return_url: null,
    metadata: {},
    amount_refunded: 0,
    gateway: { order_id: gatewayOrderId, tran_id: tranId, appcode: "123456", channel: "maybank2u", paydate: "2026-11-26 12:00:00" },
    failure: null,
    expires_at: now,
    created_at: now,
    updated_at: now,
  };
}

/**
 * The background statements the service's loops issue for what the requests leave behind, run
 * beside a baseline as the loops run them: audit rows sealed into the hash chain (up to 1000 a
 * round), and IPN echo jobs claimed 64 at a time and recorded done (the echo's POST itself is not
 * a database statement). A loop goes round again at once after a full round, else after 1 s.
 * Returns stop(), which waits for the rounds in flight.
 */
export function backgroundStatements(sql: Sql): { stop(): Promise<void> } {
  let stopped = false;
  const loop = async (round: () => Promise<boolean>) => {
    while (!stopped) {
      const full = await round();
      if (!full) for (let waited = 0; waited < 1000 && !stopped; waited += 50) await new Promise((r) => setTimeout(r, 50));
    }
  };
  const seal = async () => {
    const [row] = await sql<{ sealed: number }[]>`select audit_log_seal(1000) as sealed`;
    return Number(row?.sealed) >= 1000;
  };
  const echoJobs = async () => {
    const now = new Date();
    const lockedUntil = new Date(now.getTime() + 120_000).toISOString();
    const claimed = await sql<{ id: string }[]>`update jobs set attempts = attempts + 1, locked_until = ${lockedUntil}::timestamptz,
        updated_at = ${now.toISOString()}::timestamptz
      where id in (select id from jobs where status = 'pending' and kind in ('ipn_echo', 'requery', 'expire', 'refund_poll')
        and run_at <= ${now.toISOString()}::timestamptz and (locked_until is null or locked_until <= ${now.toISOString()}::timestamptz)
        order by run_at, id limit 64 for update skip locked)
      returning *`;
    if (claimed.length > 0) {
      await sql`update jobs set status = 'done', locked_until = null, updated_at = ${new Date().toISOString()}::timestamptz
        where id in ${sql(claimed.map((job) => job.id))} and status = 'pending' and locked_until = ${lockedUntil}::timestamptz
        returning id`;
    }
    return claimed.length >= 64;
  };
  const running = Promise.all([loop(seal), loop(echoJobs)]);
  return {
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}
