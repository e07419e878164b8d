import { sql } from "drizzle-orm";
import { queryRows, type Database } from "../../adapters/db/client.js";
import { auditInsertFrom } from "../audit.js";

/** Payment states nothing but a verified late success changes: their personal data may go once their time is up. */
export const finalPaymentStatuses = ["succeeded", "failed", "cancelled", "expired"] as const;

/** What each kind of erased raw data is replaced by: a marker that says it was there and why it is gone. */
export const erasedMarker = { _erased: "retention" } as const;

type Tx = Pick<Database, "execute">;

export interface ErasureContext {
  /** Who erased: `system:retention`, or the admin who asked (`admin:<sub>`). */
  actor: string;
  reason: "retention" | "request";
  requestId?: string;
  now: Date;
}

/**
 * Erases the personal data of these payments inside the caller's transaction (which should hold
 * their row locks): the customer's name, email, mobile and email hash become null (the ciphertext
 * is gone, so no key brings them back), as do their refunds' beneficiaries, and the masked customer
 * and beneficiary in their events' bodies. Amounts, states, tranIDs, refunds and the audit chain
 * stay. One audit row per payment erased (who, why; never the data). Returns the ids erased now
 * (a payment already erased is left out).
 */
export async function erasePersonalData(tx: Tx, ids: readonly string[], how: ErasureContext): Promise<string[]> {
  if (ids.length === 0) return [];
  const list = sql.join(
    ids.map((id) => sql`${id}`),
    sql`, `,
  );
  const now = sql`${how.now.toISOString()}::timestamptz`;
  const rows = await queryRows<{ id: string }>(
    tx,
    sql`with erased as (
          update payments set customer_name = null, customer_email = null, customer_mobile = null, customer_email_hash = null, erased_at = ${now}
          where id in (${list}) and erased_at is null
          returning id
        ), erased_refunds as (
          update refunds set beneficiary = null, beneficiary_masked = null
          where payment_id in (select id from erased) and (beneficiary is not null or beneficiary_masked is not null)
          returning id
        ), erased_events as (
          -- Webhook bodies carry the customer masked (initials, the email's domain) and a refund's
          -- bank and last digits: still personal data, so they go too (create_missing false: only
          -- keys that are there are set to null).
          update events set data = jsonb_set(jsonb_set(data, '{customer}', 'null'::jsonb, false), '{beneficiary}', 'null'::jsonb, false)
          where (payment_id in (select id from erased) or refund_id in (select id from refunds where payment_id in (select id from erased)))
            and (data ? 'customer' or data ? 'beneficiary')
          returning id
        ), audited as (
          ${auditInsertFrom("erased", {
            actor: how.actor,
            action: "payment.personal_data_erased",
            entityType: "payment",
            requestId: how.requestId,
            data: { reason: how.reason },
          })}
        )
        select id from erased order by id`,
  );
  return rows.map((row) => row.id);
}
