import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, lt, type SQL } from "drizzle-orm";
import { deliveryStatuses, events } from "../drizzle/schema.js";
import { auditContext } from "../lib/http/context.js";
import { authenticate } from "../lib/http/auth/middleware.js";
import { eventTypes } from "../lib/domain/webhooks/events.js";
import { bearerAuth, createRouter, problems } from "../lib/http/openapi.js";
import { deliveriesByEvent, redeliverEvent, type DeliveryState } from "../lib/domain/webhooks/redeliver.js";

const Delivery = z
  .object({
    receiver: z.string(),
    status: z.enum(deliveryStatuses),
    attempts: z.number().int().openapi({ description: "Attempts since the event was recorded or last redelivered" }),
    next_attempt_at: z.string().nullable().openapi({ description: "When the next attempt is due (pending only)" }),
    last_status_code: z.number().int().nullable().openapi({ description: "The receiver's last HTTP status; null when it gave none" }),
    last_error: z.string().nullable().openapi({ description: "Why the last attempt failed (a short excerpt of the answer at most)" }),
    delivered_at: z.string().nullable(),
  })
  .openapi("EventDelivery");

const Event = z
  .object({
    id: z.string().openapi({ description: "Also the webhook-id header of every delivery of this event" }),
    type: z.enum(eventTypes),
    created_at: z.string(),
    data: z.record(z.string(), z.unknown()),
    deliveries: z.array(Delivery).openapi({ description: "One per webhook receiver" }),
  })
  .openapi("Event");

const listEventsRoute = createRoute({
  method: "get",
  path: "/v1/events",
  tags: ["Events"],
  summary: "The event log, newest first, with each event's webhook deliveries",
  description: "Role `admin`. Filter by `type` and `payment_id`; each event's `id` is the `webhook-id` its deliveries carry.",
  security: bearerAuth,
  middleware: [authenticate({ roles: ["admin"] })] as const,
  request: {
    query: z.object({
      type: z.enum(eventTypes).optional(),
      payment_id: z.string().min(1).max(64).optional(),
      limit: z.coerce.number().int().min(1).max(100).default(20),
      starting_after: z.string().min(1).max(64).optional(),
    }),
  },
  responses: {
    200: {
      description: "A page of events",
      content: { "application/json": { schema: z.object({ object: z.literal("list"), data: z.array(Event), has_more: z.boolean() }) } },
    },
    ...problems(400, 401, 403),
  },
});

const redeliverRoute = createRoute({
  method: "post",
  path: "/v1/events/{id}/redeliver",
  tags: ["Events"],
  summary: "Send an event's webhook again",
  description:
    "Role `admin`. Every receiver in WEBHOOK_URLS gets the event again, with the same webhook-id and body and a fresh retry budget; " +
    "the background worker (or the next POST /jobs/deliver) sends it.",
  security: bearerAuth,
  middleware: [authenticate({ roles: ["admin"] })] as const,
  request: { params: z.object({ id: z.string().min(1).max(64) }) },
  responses: {
    202: { description: "Queued: the event with its deliveries, now pending", content: { "application/json": { schema: Event } } },
    ...problems(401, 403, 404, 409),
  },
});

function eventResource(e: typeof events.$inferSelect, deliveries: DeliveryState[]) {
  return { id: e.id, type: e.type as (typeof eventTypes)[number], created_at: e.createdAt.toISOString(), data: e.data, deliveries };
}

/** The event log and redelivery, for operators. */
export function eventRoutes() {
  return createRouter()
    .openapi(listEventsRoute, async (c) => {
      const query = c.req.valid("query");
      const db = c.get("deps").database.db;
      const conditions: SQL[] = [];
      if (query.type) conditions.push(eq(events.type, query.type));
      if (query.payment_id) conditions.push(eq(events.paymentId, query.payment_id));
      if (query.starting_after) conditions.push(lt(events.id, query.starting_after));
      const rows = await db
        .select()
        .from(events)
        .where(conditions.length ? and(...conditions) : undefined)
        .orderBy(desc(events.id))
        .limit(query.limit + 1);
      const page = rows.slice(0, query.limit);
      const deliveries = await deliveriesByEvent(db, page.map((e) => e.id));
      return c.json(
        { object: "list" as const, data: page.map((e) => eventResource(e, deliveries.get(e.id) ?? [])), has_more: rows.length > query.limit },
        200,
      );
    })
    .openapi(redeliverRoute, async (c) => {
      const { event, deliveries } = await redeliverEvent(c.get("deps"), c.req.valid("param").id, auditContext(c));
      return c.json(eventResource(event, deliveries), 202);
    });
}
