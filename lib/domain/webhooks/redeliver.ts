import { eq } from "drizzle-orm";
import { eventDeliveries, events } from "../../../drizzle/schema.js";
import { appendAudit } from "../audit.js";
import type { AppDeps } from "../deps.js";
import { ApiError } from "../../core/errors.js";
import { deliveriesByEvent, eventResource, type EventResource } from "./listing.js";

/**
 * Sends an event again to every receiver in WEBHOOK_URLS: each delivery (added if the receiver is
 * new) becomes pending, due now, with a fresh retry budget (attempts back to 0), and any claim in
 * flight is voided so its outcome cannot overwrite this. The webhook-id and body stay the event's.
 * last_status_code, last_error and delivered_at keep the previous answer until the next attempt.
 * Audited; 404 for an unknown event, 409 when no receiver is configured. Answers the event as operators see it.
 */
export async function redeliverEvent(deps: AppDeps, eventId: string, audit: { actor: string; requestId?: string }): Promise<EventResource> {
  const receivers = deps.config.webhooks.urls;
  const now = deps.now();
  const event = await deps.database.db.transaction(async (tx) => {
    const [row] = await tx.select().from(events).where(eq(events.id, eventId)).limit(1);
    if (!row) throw new ApiError("not_found", `No event ${eventId}.`);
    // Its body was erased by the retention job: what would be sent is a marker, not the event.
    if (row.dataErasedAt)
      throw new ApiError("invalid_state", `Event ${eventId}'s body was erased under the retention policy; it can no longer be sent.`);
    if (receivers.length === 0) throw new ApiError("invalid_state", "No webhook receivers are configured (WEBHOOK_URLS).");
    await tx
      .insert(eventDeliveries)
      .values(receivers.map((receiver) => ({ eventId, receiver, nextAttemptAt: now, createdAt: now, updatedAt: now })))
      .onConflictDoUpdate({
        target: [eventDeliveries.eventId, eventDeliveries.receiver],
        set: { status: "pending", attempts: 0, nextAttemptAt: now, lockedUntil: null, updatedAt: now },
      });
    // The count only: receiver URLs can carry tokens, and the audit log is kept for ever.
    await appendAudit(tx, {
      actor: audit.actor,
      action: "event.redelivered",
      entityType: "event",
      entityId: eventId,
      requestId: audit.requestId,
      data: { receivers: receivers.length },
    });
    return row;
  });
  const deliveries = (await deliveriesByEvent(deps.database.db, [eventId])).get(eventId) ?? [];
  return eventResource(event, deliveries);
}
