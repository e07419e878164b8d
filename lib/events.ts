import { eventDeliveries, events } from "../drizzle/schema.js";
import type { Database } from "./db/client.js";
import { newId } from "./ids.js";

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

type Tx = Pick<Database, "insert">;

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
  await tx.insert(events).values({
    id,
    type: event.type,
    paymentId: event.paymentId,
    refundId: event.refundId,
    data: event.data,
    createdAt: event.now,
  });
  if (receivers.length > 0) {
    await tx.insert(eventDeliveries).values(receivers.map((receiver) => ({ eventId: id, receiver, nextAttemptAt: event.now })));
  }
  return id;
}
