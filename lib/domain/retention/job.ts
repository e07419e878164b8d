import { sql } from "drizzle-orm";
import type { AppDeps } from "../deps.js";
import { queryRows } from "../../adapters/db/client.js";
import { emailHasherFor } from "./email-hash.js";
import { erasedMarker, erasePersonalData, finalPaymentStatuses } from "./erase.js";

export interface RetentionBatchResult {
  /** Payments given a customer_email_hash they lacked (rows older than the column). */
  backfilled: number;
  /** Payments whose personal data was erased. */
  payments: number;
  /** Gateway messages whose raw fields were replaced by the marker. */
  gatewayMessages: number;
  /** Events whose delivered body was replaced by the marker. */
  events: number;
}

/** Most rows of each kind one batch changes (default 200): short transactions, short row locks. */
const defaultLimit = 200;

const statuses = sql.join(
  finalPaymentStatuses.map((s) => sql`${s}`),
  sql`, `,
);
const iso = (date: Date) => sql`${date.toISOString()}::timestamptz`;

/**
 * One batch of the retention job, safe on every replica at once: each step picks its rows with
 * FOR UPDATE SKIP LOCKED and changes them in the same transaction, re-checking that they still
 * hold data, so two replicas never take the same row and a row is erased once. Steps:
 * backfill missing email hashes; erase personal data of payments final (and their refunds settled)
 * for RETENTION_PERSONAL_DATA; replace raw Fiuu fields older than RETENTION_GATEWAY_MESSAGES;
 * replace bodies of events with no delivery pending, older than RETENTION_WEBHOOK_BODIES.
 */
export async function runRetentionBatch(deps: AppDeps, options: { limit?: number } = {}): Promise<RetentionBatchResult> {
  const limit = options.limit ?? defaultLimit;
  const now = deps.now();
  const { retention } = deps.config;
  const result: RetentionBatchResult = {
    backfilled: await backfillEmailHashes(deps, limit),
    payments: await erasePaymentsPastRetention(deps, new Date(now.getTime() - retention.personalDataMs), now, limit),
    gatewayMessages: await eraseGatewayFields(deps, new Date(now.getTime() - retention.gatewayMessagesMs), now, limit),
    events: await eraseEventBodies(deps, new Date(now.getTime() - retention.webhookBodiesMs), now, limit),
  };
  const { metrics } = deps;
  for (const kind of ["payments", "gatewayMessages", "events"] as const) {
    if (result[kind] > 0) metrics.retentionErased.inc({ kind: metricKinds[kind] }, result[kind]);
  }
  if (result.payments + result.gatewayMessages + result.events + result.backfilled > 0) deps.logger.info({ ...result }, "retention batch");
  return result;
}

const metricKinds = { payments: "personal_data", gatewayMessages: "gateway_messages", events: "webhook_bodies" } as const;

/** Whether a batch filled up on any step (more is waiting). */
export const retentionBacklog = (result: RetentionBatchResult, limit = defaultLimit) =>
  Math.max(result.backfilled, result.payments, result.gatewayMessages, result.events) >= limit;

/**
 * Gives payments written before customer_email_hash existed their hash (the migration cannot: the
 * key never reaches the database). A value that cannot be decrypted gets `unreadable` so it is not
 * picked again; erasure by email cannot find it (the retention clock still erases it).
 */
export async function backfillEmailHashes(deps: AppDeps, limit = defaultLimit): Promise<number> {
  const hasher = emailHasherFor(deps.config);
  return deps.database.db.transaction(async (tx) => {
    const rows = await queryRows<{ id: string; customer_email: string }>(
      tx,
      sql`select id, customer_email from payments where customer_email_hash is null and customer_email is not null
          order by id limit ${limit} for update skip locked`,
    );
    if (rows.length === 0) return 0;
    let unreadable = 0;
    const values = rows.map((row) => {
      let hash: string;
      try {
        hash = hasher.hash(deps.cipher.decrypt(row.customer_email));
      } catch {
        unreadable++;
        hash = "unreadable";
      }
      return sql`(${row.id}, ${hash})`;
    });
    await tx.execute(
      sql`update payments set customer_email_hash = v.hash from (values ${sql.join(values, sql`, `)}) as v(id, hash) where payments.id = v.id`,
    );
    if (unreadable > 0) deps.logger.warn({ unreadable }, "customer emails that cannot be decrypted were left without an email hash");
    return rows.length;
  });
}

/**
 * The clock is the later of the payment's last change and its refunds' last change (a payment's
 * updated_at moves with every state change and refund), and no refund may still be pending.
 */
async function erasePaymentsPastRetention(deps: AppDeps, cutoff: Date, now: Date, limit: number): Promise<number> {
  return deps.database.db.transaction(async (tx) => {
    const rows = await queryRows<{ id: string }>(
      tx,
      sql`select p.id from payments p
          where p.erased_at is null and p.status in (${statuses}) and p.updated_at < ${iso(cutoff)}
            and not exists (select 1 from refunds r where r.payment_id = p.id and (r.status = 'pending' or r.updated_at >= ${iso(cutoff)}))
          order by p.updated_at, p.id limit ${limit}
          for update of p skip locked`,
    );
    const erased = await erasePersonalData(
      tx,
      rows.map((r) => r.id),
      { actor: "system:retention", reason: "retention", now },
    );
    return erased.length;
  });
}

async function eraseGatewayFields(deps: AppDeps, cutoff: Date, now: Date, limit: number): Promise<number> {
  const rows = await queryRows<{ id: number }>(
    deps.database.db,
    sql`with picked as (
          select id from gateway_messages
          where fields_erased_at is null and received_at < ${iso(cutoff)} and coalesce(last_received_at, received_at) < ${iso(cutoff)}
          order by received_at, id limit ${limit}
          for update skip locked
        )
        update gateway_messages g set fields = ${JSON.stringify(erasedMarker)}::jsonb, fields_erased_at = ${iso(now)}
        from picked where g.id = picked.id and g.fields_erased_at is null
        returning g.id`,
  );
  return rows.length;
}

async function eraseEventBodies(deps: AppDeps, cutoff: Date, now: Date, limit: number): Promise<number> {
  const rows = await queryRows<{ id: string }>(
    deps.database.db,
    sql`with picked as (
          select e.id from events e
          where e.data_erased_at is null and e.created_at < ${iso(cutoff)}
            and not exists (select 1 from event_deliveries d where d.event_id = e.id and d.status = 'pending')
          order by e.created_at, e.id limit ${limit}
          for update of e skip locked
        )
        update events e set data = ${JSON.stringify(erasedMarker)}::jsonb, data_erased_at = ${iso(now)}
        from picked where e.id = picked.id and e.data_erased_at is null
        returning e.id`,
  );
  return rows.length;
}
