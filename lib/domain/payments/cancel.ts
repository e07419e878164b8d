import { appendAudit } from "../audit.js";
import type { AppDeps } from "../deps.js";
import { recordEvent } from "../webhooks/events.js";
import { lockPayment, notFound } from "./queries.js";
import { paymentResource } from "./resource.js";
import { markCancelled } from "./statements.js";
import { assertAllows } from "./transitions.js";

/**
 * Cancels a payment the shopper has not paid. Only `created` can be cancelled: once Fiuu reports
 * it pending, money may be on its way, and a success that still arrives is recorded anyway.
 */
export async function cancelPayment(deps: AppDeps, id: string, audit: { actor: string; requestId?: string }) {
  const now = deps.now();
  const row = await deps.database.db.transaction(async (tx) => {
    const current = await lockPayment(tx, id);
    if (!current) throw notFound(id);
    assertAllows("cancel", current, now);
    const updated = await markCancelled(tx, id, now);
    await recordEvent(tx, deps.config.webhooks.urls, {
      type: "payment.cancelled",
      paymentId: id,
      data: paymentResource(deps, updated!, { masked: true }),
      now,
    });
    await appendAudit(tx, { actor: audit.actor, action: "payment.cancelled", entityType: "payment", entityId: id, requestId: audit.requestId });
    return updated!;
  });
  deps.metrics.payments.inc({ status: "cancelled", channel: row.channel ?? "any" });
  deps.metrics.paymentEvents.inc({ type: "payment.cancelled" });
  return row;
}
