import { createRoute, z } from "@hono/zod-openapi";
import { auditContext } from "../lib/http/context.js";
import { authenticate } from "../lib/http/auth/middleware.js";
import { idempotency } from "../lib/http/idempotency.js";
import { bearerAuth, createRouter, idempotencyHeader, problems } from "../lib/http/openapi.js";
import { eraseCustomerByEmail } from "../lib/domain/retention/by-email.js";

const EraseCustomerBody = z
  .strictObject({
    email: z
      .string()
      .trim()
      .min(3)
      .max(254)
      .email()
      .openapi({ example: "mei.ling@example.com", description: "Matched case-insensitively through a keyed hash; never stored or logged" }),
  })
  .openapi("EraseCustomer");

const CustomerErasure = z
  .object({
    object: z.literal("customer_erasure"),
    count: z.number().int().openapi({ description: "Payments whose personal data was erased by this request" }),
    payment_ids: z.array(z.string()),
  })
  .openapi("CustomerErasure");

const eraseRoute = createRoute({
  method: "post",
  path: "/v1/customers/erase",
  tags: ["Payments"],
  summary: "Erase a customer's personal data from their final payments (a data subject's request)",
  description:
    "Erases the customer's name, email and mobile, their refunds' beneficiaries and the masked copies in webhook bodies from every payment made with this email: " +
    "the payments still read, with `customer: null` and `erased_at`; amounts, states, gateway ids, refunds and the audit log stay. " +
    "All or nothing: 409 `invalid_state` naming `open_payment_ids` when a payment is still open (created, pending, conflicted, or a refund pending); ask again, with a new Idempotency-Key, once they are final. " +
    "Audited per payment with who asked; the email is not recorded.",
  security: bearerAuth,
  middleware: [authenticate({ roles: ["admin"] }), idempotency()] as const,
  request: {
    headers: idempotencyHeader,
    body: { content: { "application/json": { schema: EraseCustomerBody } }, required: true },
  },
  responses: {
    200: { description: "What was erased (count 0 when no payment holds this email)", content: { "application/json": { schema: CustomerErasure } } },
    ...problems(400, 401, 403, 409, 422, 503),
  },
});

/** Customers: erasure of personal data on request (role admin). */
export function customerRoutes() {
  return createRouter().openapi(eraseRoute, async (c) => {
    const { email } = c.req.valid("json");
    const ids = await eraseCustomerByEmail(c.get("deps"), email, auditContext(c));
    return c.json({ object: "customer_erasure" as const, count: ids.length, payment_ids: ids }, 200);
  });
}
