import { createRoute, z } from "@hono/zod-openapi";
import { supportedCurrencies } from "../lib/core/money.js";
import { createRouter, problems } from "../lib/http/openapi.js";
import { listPaymentMethods, paymentMethodResource } from "../lib/domain/payments/methods.js";

const PaymentMethod = z
  .object({
    code: z.string().openapi({ example: "fpx" }),
    name: z.string(),
    type: z.string(),
    currencies: z.array(z.string()),
    min_amount: z.number().int().openapi({
      description: "Smallest amount accepted, minor units, inclusive: 101 where Fiuu asks for more than RM 1.00",
      example: 101,
    }),
    max_amount: z.number().int().nullable().openapi({ description: "Largest amount accepted, minor units, inclusive; null when there is none" }),
  })
  .openapi("PaymentMethod");

const route = createRoute({
  method: "get",
  path: "/v1/payment-methods",
  tags: ["Checkout"],
  summary: "Enabled payment channels, optionally for a currency and amount",
  description: "No credentials needed: a checkout page may show the channels. `amount` (minor units) keeps only the channels whose limits take it.",
  request: {
    query: z.object({
      currency: z.enum(supportedCurrencies).optional(),
      amount: z.coerce
        .number()
        .int()
        .positive()
        .max(100_000_000)
        .optional()
        .openapi({ description: "Minor units: only channels that take this amount" }),
    }),
  },
  responses: {
    200: {
      description: "Channels",
      content: { "application/json": { schema: z.object({ object: z.literal("list"), data: z.array(PaymentMethod) }) } },
    },
    ...problems(400),
  },
});

/** The public channel catalogue. */
export function paymentMethodRoutes() {
  return createRouter().openapi(route, async (c) => {
    const rows = await listPaymentMethods(c.get("deps").database.db, c.req.valid("query"));
    c.header("cache-control", "public, max-age=60");
    return c.json({ object: "list" as const, data: rows.map(paymentMethodResource) }, 200);
  });
}
