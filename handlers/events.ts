import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, lt, type SQL } from "drizzle-orm";
import { events } from "../drizzle/schema.js";
import { authenticate } from "../lib/auth/middleware.js";
import { eventTypes } from "../lib/events.js";
import { bearerAuth, createRouter, problems } from "../lib/openapi.js";

const Event = z
  .object({ id: z.string(), type: z.enum(eventTypes), created_at: z.string(), data: z.record(z.string(), z.unknown()) })
  .openapi("Event");

const listEventsRoute = createRoute({
  method: "get",
  path: "/v1/events",
  tags: ["Events"],
  summary: "The event log, newest first",
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

/** The event log for operators. */
export function eventRoutes() {
  return createRouter().openapi(listEventsRoute, async (c) => {
    const query = c.req.valid("query");
    const conditions: SQL[] = [];
    if (query.type) conditions.push(eq(events.type, query.type));
    if (query.payment_id) conditions.push(eq(events.paymentId, query.payment_id));
    if (query.starting_after) conditions.push(lt(events.id, query.starting_after));
    const rows = await c.var.deps.database.db
      .select()
      .from(events)
      .where(conditions.length ? and(...conditions) : undefined)
      .orderBy(desc(events.id))
      .limit(query.limit + 1);
    const page = rows.slice(0, query.limit).map((e) => ({
      id: e.id,
      type: e.type as (typeof eventTypes)[number],
      created_at: e.createdAt.toISOString(),
      data: e.data,
    }));
    return c.json({ object: "list" as const, data: page, has_more: rows.length > query.limit }, 200);
  });
}
