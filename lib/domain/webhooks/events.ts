import { sql } from "drizzle-orm";
import { executeAll } from "../../adapters/db/batch.js";
import type { Database } from "../../adapters/db/client.js";
import { newId } from "../../core/ids.js";

export const eventTypes = [
  "payment.pending",
  "payment.succeeded",
  "payment.failed",
  "payment.cancelled",
  "payment.expired",
  "payment.conflicted",
  "payment.late_success",
  "payment.duplicate_charge",
  "refund.pending",
  "refund.succeeded",
  "refund.failed",
] as const;
export type EventType = (typeof eventTypes)[number];

type Tx = Pick<Database, "execute">;

/**
 * Writes an event to the outbox with one pending delivery per webhook receiver, inside the
 * caller's transaction: the event exists exactly when the state change it reports does.
 */
export async function recordEvent(
  tx: Tx,
  receivers: readonly string[],
  event: { type: EventType; paymentId?: string; refundId?: string; data: Record<string, unknown>; now: Date },
): Promise<string> {
  const id = newId("evt", event.now.getTime());
  const at = event.now.toISOString();
  const deliveries = receivers.map((receiver) => sql`(${id}, ${receiver}, ${at}::timestamptz)`);
  const statements = [
    sql`insert into events (id, type, payment_id, refund_id, data, created_at)
      values (${id}, ${event.type}, ${event.paymentId ?? null}, ${event.refundId ?? null}, ${JSON.stringify(event.data)}::jsonb, ${at}::timestamptz)`,
  ];
  if (deliveries.length > 0) {
    statements.push(sql`insert into event_deliveries (event_id, receiver, next_attempt_at) values ${sql.join(deliveries, sql`, `)}`);
  }
  // One statement (the deliveries' foreign key is checked at its end), or part of the caller's batch.
  await executeAll(tx, statements);
  return id;
}
