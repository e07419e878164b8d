import { createHash, randomUUID } from "node:crypto";
import type { Redis } from "../../lib/redis/index.js";
import type { Sql } from "postgres";

// The database and Redis statements one request of each scenario issues, sent directly through the
// same drivers (postgres.js, and the service's Redis client: @upstash/redis over ioredis): the
// benchmark's baseline, the irreducible work without HTTP, the framework, JSON, JWT, encryption or
// logging. Keep in step with lib/ (README "Performance" lists them).

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
  // lib/payments/create.ts: the holder check, the payment and its audit row in one statement.
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

/** fiuu_notify: the report transaction for one created payment (its gateway order id): the locked read, then its writes together. */
export async function notifyStatements(sql: Sql, gatewayOrderId: string, tranId: string) {
  await sql.begin(async (tx) => {
    const [payment] = await tx`select * from payments where gateway_order_id = ${gatewayOrderId} for update limit 1`;
    if (!payment) throw new Error(`no payment ${gatewayOrderId}`);
    const now = new Date().toISOString();
    await Promise.all([
      tx`update payments set status = 'succeeded', tran_id = ${tranId}, appcode = '123456', paid_channel = 'maybank2u',
        paydate = '2026-11-26 12:00:00', updated_at = ${now}::timestamptz where id = ${payment.id}`,
      tx`with event as (insert into events (id, type, payment_id, refund_id, data, created_at) values (${`evt_${tranId}`}, 'payment.succeeded',
        ${payment.id}, ${null}, ${JSON.stringify({ id: payment.id, status: "succeeded" })}::jsonb, ${now}::timestamptz)) select 1`,
      tx`insert into gateway_messages (kind, payment_id, tran_id, order_id, status, fields, signature_valid, outcome, detail, received_at)
        values ('notification', ${payment.id}, ${tranId}, ${gatewayOrderId}, '00', ${tx.json({ tranID: tranId })}, true, 'applied',
        'created → succeeded', ${now}::timestamptz)`,
      tx`insert into jobs (kind, payload, dedupe_key, run_at, max_attempts) values ('ipn_echo', ${tx.json({ fields: { tranID: tranId } })},
        ${`ipn_echo:${tranId}:00:notification`}, ${now}::timestamptz, 100) on conflict (dedupe_key) where status = 'pending' do nothing`,
      tx`insert into audit_log (actor, action, entity_type, entity_id, request_id, data)
        values ('fiuu:notification', 'payment.succeeded', 'payment', ${payment.id}, ${tranId}, ${tx.json({ from: "created", to: "succeeded" })})`,
    ]);
  });
}
