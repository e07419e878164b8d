import { and, asc, desc, eq, inArray } from "drizzle-orm";
import { deliveryStatuses, eventDeliveries, events } from "../../../drizzle/schema.js";
import type { Database } from "../../adapters/db/client.js";
import { afterCursor, fetchLimit, toPage, type Page, type PageQuery } from "../paging.js";
import type { EventType } from "./events.js";

export { deliveryStatuses };

export type EventRow = typeof events.$inferSelect;

/** An event's delivery to one receiver, as operators see it. */
export interface DeliveryState {
  receiver: string;
  status: (typeof deliveryStatuses)[number];
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: string | null;
}

/** The API's view of an event with its deliveries. */
export function eventResource(e: EventRow, deliveries: DeliveryState[]) {
  return { id: e.id, type: e.type as EventType, created_at: e.createdAt.toISOString(), data: e.data, deliveries };
}

export type EventResource = ReturnType<typeof eventResource>;

/** The deliveries of a page of events, in one query, by event id (events without deliveries map to []). */
export async function deliveriesByEvent(db: Database, eventIds: readonly string[]): Promise<Map<string, DeliveryState[]>> {
  const byEvent = new Map<string, DeliveryState[]>(eventIds.map((id) => [id, []]));
  if (eventIds.length === 0) return byEvent;
  const rows = await db
    .select()
    .from(eventDeliveries)
    .where(inArray(eventDeliveries.eventId, [...eventIds]))
    .orderBy(asc(eventDeliveries.id));
  for (const row of rows) {
    byEvent.get(row.eventId)?.push({
      receiver: row.receiver,
      status: row.status,
      attempts: row.attempts,
      next_attempt_at: row.status === "pending" ? row.nextAttemptAt.toISOString() : null,
      last_status_code: row.lastStatusCode,
      last_error: row.lastError,
      delivered_at: row.deliveredAt?.toISOString() ?? null,
    });
  }
  return byEvent;
}

/** The event log newest first, filtered by type and payment, a page at a time, each event with its deliveries. */
export async function listEvents(db: Database, query: { type?: EventType; payment_id?: string } & PageQuery): Promise<Page<EventResource>> {
  const rows = await db
    .select()
    .from(events)
    .where(
      and(
        query.type ? eq(events.type, query.type) : undefined,
        query.payment_id ? eq(events.paymentId, query.payment_id) : undefined,
        afterCursor(events.id, query),
      ),
    )
    .orderBy(desc(events.id))
    .limit(fetchLimit(query));
  const page = toPage(rows, query);
  const deliveries = await deliveriesByEvent(
    db,
    page.rows.map((e) => e.id),
  );
  return { rows: page.rows.map((e) => eventResource(e, deliveries.get(e.id) ?? [])), hasMore: page.hasMore };
}
