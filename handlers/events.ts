import { createRoute, z } from "@hono/zod-openapi";
import { auditContext } from "../lib/http/context.js";
import { authenticate } from "../lib/http/auth/middleware.js";
import { eventTypes } from "../lib/domain/webhooks/events.js";
import { bearerAuth, createRouter, problems } from "../lib/http/openapi.js";
import { listAnswer, listOf, pageQuery } from "../lib/http/paging.js";
import { deliveryStatuses, listEvents } from "../lib/domain/webhooks/listing.js";
import { redeliverEvent } from "../lib/domain/webhooks/redeliver.js";

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
      ...pageQuery,
    }),
  },
  responses: {
    200: {
      description: "A page of events",
      content: { "application/json": { schema: listOf(Event) } },
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

/** The event log and redelivery, for operators. */
export function eventRoutes() {
  return createRouter()
    .openapi(listEventsRoute, async (c) => {
      const page = await listEvents(c.get("deps").database.db, c.req.valid("query"));
      return c.json(
        listAnswer(page, (event) => event),
        200,
      );
    })
    .openapi(redeliverRoute, async (c) => {
      return c.json(await redeliverEvent(c.get("deps"), c.req.valid("param").id, auditContext(c)), 202);
    });
}
