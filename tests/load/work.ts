import { createHash, randomUUID } from "node:crypto";
import { executeIfUnchanged } from "../../lib/adapters/db/batch.js";
import { queryRows, type Database } from "../../lib/adapters/db/client.js";
import { sendPipeline, type Redis } from "../../lib/adapters/redis/index.js";
import { auditInsert, sealAuditLog } from "../../lib/domain/audit.js";
import { claimDueJobs, completeJobs, jobInsert } from "../../lib/domain/job-queue.js";
import { gatewayMessageUpsert } from "../../lib/domain/payments/reports.js";
import { findPaymentVersionByGatewayOrder } from "../../lib/domain/payments/queries.js";
import type { PaymentRow } from "../../lib/domain/payments/resource.js";
import { paymentCreate, paymentUpdateIfUnchanged } from "../../lib/domain/payments/statements.js";
import { eventInserts } from "../../lib/domain/webhooks/events.js";

// The database and Redis work one request of each scenario does, without HTTP, the framework,
// validation, JWT, encryption or logging: the statements come from the service's own builders
// (lib/domain/…/statements, the tables' insert and update builders) and go through the same
// executeSql, Drizzle session and postgres.js pool, with payloads the size of the service's. Used
// by the bench's baseline (bench.ts) and its ceiling server (ceiling.ts). The Redis commands are
// the service's middleware's, sent through the same client (@upstash/redis over ioredis).

export const benchMerchantId = "SB_bench";
const ciphertext = "v1.bench.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA";

/** create_payment: the rate-limit counter with the idempotency claim (one round trip), the create statement, the stored answer. */
export async function createPaymentWork(db: Database, redis: Redis, n: number) {
  const key = `bench:${randomUUID()}`;
  const window = `ratelimit:create_payment:bench:${Math.floor(Date.now() / 60_000)}`;
  await sendPipeline(redis, [
    ["incr", window],
    ["expire", window, 61, "nx"],
    ["set", `idempotency:${key}`, JSON.stringify({ state: "running", fingerprint: "x", owner: "y" }), "nx", "get", "px", 30_000],
  ]);
  const id = `pay_base${n}${randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const [outcome] = await queryRows<{ created: string | null }>(db, paymentCreate(benchPayment(id), { actor: "service:bench", requestId: key }));
  if (!outcome?.created) throw new Error(`order BASE-${id} was refused`);
  await redis.set(`idempotency:${key}`, { state: "done", fingerprint: "x", status: 201, body: "{}" }, { ex: 86_400 });
}

/** A created payment as createPayment builds it, with the bench's ciphertext in place of encrypted fields. */
function benchPayment(id: string): PaymentRow {
  const now = new Date();
  return {
    id,
    orderId: `BASE-${id}`,
    amount: 1050,
    currency: "MYR",
    status: "created",
    channel: null,
    description: "Bench",
    customerName: ciphertext,
    customerEmail: ciphertext,
    customerMobile: ciphertext,
    customerEmailHash: createHash("sha256").update(`email:${id}`).digest("hex"),
    erasedAt: null,
    returnUrl: null,
    metadata: {},
    clientSecretHash: createHash("sha256").update(id).digest("hex"),
    gatewayOrderId: id.replace("_", ""),
    tranId: null,
    appcode: null,
    paidChannel: null,
    paydate: null,
    failureCode: null,
    failureMessage: null,
    amountRefunded: 0,
    amountRefundReserved: 0,
    createdBy: "bench",
    checkoutStartedAt: null,
    expiresAt: new Date(now.getTime() + 30 * 60_000),
    createdAt: now,
    updatedAt: now,
  };
}

/**
 * fiuu_notify: what applyVerified sends for a successful notification of one created payment (its
 * gateway order id): the unlocked read with the row version, then its writes as one statement
 * guarded by that version (the update, the event, the gateway message, the IPN echo job, the audit
 * row; the bench has no webhook receivers, so no deliveries).
 */
export async function notifyWork(db: Database, gatewayOrderId: string, tranId: string) {
  const seen = await findPaymentVersionByGatewayOrder(db, gatewayOrderId);
  if (!seen) throw new Error(`no payment ${gatewayOrderId}`);
  const { payment } = seen;
  const now = new Date();
  const fields: Record<string, string> = { ...reportFields(gatewayOrderId, tranId), skey: "0123456789abcdef0123456789abcdef" };
  const changes = {
    status: "succeeded",
    tranId,
    appcode: fields.appcode!,
    paidChannel: fields.channel!,
    paydate: fields.paydate!,
    updatedAt: now,
  } as const;
  const resource = paymentResource({ ...payment, ...changes });
  const applied = await executeIfUnchanged(db, paymentUpdateIfUnchanged(payment.id, seen.version, changes), [
    ...eventInserts([], { type: "payment.succeeded", paymentId: payment.id, data: resource, now }).statements,
    gatewayMessageUpsert({
      kind: "notification",
      fields,
      signatureValid: true,
      outcome: "applied",
      detail: "created → succeeded",
      paymentId: payment.id,
      now,
    }),
    jobInsert({ kind: "ipn_echo", payload: { fields }, dedupeKey: `ipn_echo:${tranId}:00:notification`, runAt: now, maxAttempts: 100 }),
    auditInsert({
      actor: "fiuu:notification",
      action: "payment.succeeded",
      entityType: "payment",
      entityId: payment.id,
      data: { from: payment.status, to: "succeeded", tran_id: tranId, fiuu_status: "00" },
    }),
  ]);
  if (!applied) throw new Error(`payment ${gatewayOrderId} changed under the bench`);
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

/** A payment resource the size of the service's events' (masked customer), without decrypting anything. */
function paymentResource(row: PaymentRow) {
  return {
    id: row.id,
    object: "payment",
    order_id: row.orderId,
    amount: row.amount,
    currency: row.currency,
    status: row.status,
    channel: row.channel,
    description: row.description,
    customer: { name: "S**********h", email: "s***@example.my", mobile: null },
    return_url: row.returnUrl,
    metadata: row.metadata,
    amount_refunded: row.amountRefunded,
    gateway: { order_id: row.gatewayOrderId, tran_id: row.tranId, appcode: row.appcode, channel: row.paidChannel, paydate: row.paydate },
    failure: null,
    expires_at: row.expiresAt.toISOString(),
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

/** The job kinds the service's job loop claims, and the claims it caps (lib/ops/jobs/table.ts). */
const loopKinds = ["ipn_echo", "requery", "refund_poll", "expire"];
const loopPerKind = { requery: 2 };

/**
 * The background work the service's loops do for what the requests leave behind, through the
 * service's own functions, run beside a baseline as the loops run it: audit rows sealed into the
 * hash chain (up to 1000 a round), and IPN echo jobs claimed 64 at a time and recorded done (the
 * echo's POST itself is not a database statement). A loop goes round again at once after a full
 * round, else after 1 s. Returns stop(), which waits for the rounds in flight.
 */
export function backgroundWork(db: Database): { stop(): Promise<void> } {
  let stopped = false;
  const loop = async (round: () => Promise<boolean>) => {
    while (!stopped) {
      const full = await round();
      if (!full) for (let waited = 0; waited < 1000 && !stopped; waited += 50) await new Promise((r) => setTimeout(r, 50));
    }
  };
  const seal = async () => (await sealAuditLog(db, 1000)) >= 1000;
  const echoJobs = async () => {
    const claimed = await claimDueJobs(db, { kinds: loopKinds, limit: 64, lockMs: 120_000, now: new Date(), perKind: loopPerKind });
    if (claimed.length > 0) await completeJobs(db, claimed, new Date());
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
