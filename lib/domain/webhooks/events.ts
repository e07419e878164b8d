import { sql, type SQL } from "drizzle-orm";
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

/** An event for the outbox: what happened, to which payment or refund, and the body receivers get. */
export interface OutboxEvent {
  type: EventType;
  paymentId?: string;
  refundId?: string;
  data: Record<string, unknown>;
  now: Date;
}

/**
 * The statements that write an event to the outbox with one pending delivery per webhook receiver
 * (the events insert, and the event_deliveries insert when there are receivers), and the event's
 * id: for executeAll, on their own or with a caller's other writes.
 */
export function eventInserts(receivers: readonly string[], event: OutboxEvent): { id: string; statements: SQL[] } {
  const id = newId("evt", event.now.getTime());
  const at = event.now.toISOString();
  const statements = [
    sql`insert into events (id, type, payment_id, refund_id, data, created_at)
      values (${id}, ${event.type}, ${event.paymentId ?? null}, ${event.refundId ?? null}, ${JSON.stringify(event.data)}::jsonb, ${at}::timestamptz)`,
  ];
  if (receivers.length > 0) {
    const deliveries = receivers.map((receiver) => sql`(${id}, ${receiver}, ${at}::timestamptz)`);
    statements.push(sql`insert into event_deliveries (event_id, receiver, next_attempt_at) values ${sql.join(deliveries, sql`, `)}`);
  }
  return { id, statements };
}

/**
 * Writes an event to the outbox with one pending delivery per webhook receiver, inside the
 * caller's transaction: the event exists exactly when the state change it reports does.
 */
export async function recordEvent(tx: Tx, receivers: readonly string[], event: OutboxEvent): Promise<string> {
  const { id, statements } = eventInserts(receivers, event);
  // One statement: the deliveries' foreign key is checked at its end.
  await executeAll(tx, statements);
  return id;
}
