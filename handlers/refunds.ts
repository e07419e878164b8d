import { createRoute, z } from "@hono/zod-openapi";
import { auditContext } from "../lib/http/context.js";
import { authenticate, requireTokenSub } from "../lib/http/auth/middleware.js";
import { idempotency } from "../lib/http/idempotency.js";
import { bearerAuth, createRouter, idempotencyHeader, problems } from "../lib/http/openapi.js";
import { listOf } from "../lib/http/paging.js";
import { createRefund } from "../lib/domain/refunds/create.js";
import { getRefund, listPaymentRefunds, refundStatuses } from "../lib/domain/refunds/queries.js";
import { refundResource } from "../lib/domain/refunds/resource.js";

export const Refund = z
  .object({
    id: z.string().openapi({ example: "re_01jd3y2b4c6d8e0f2g4h6j8k0m" }),
    object: z.literal("refund"),
    payment_id: z.string().openapi({ example: "pay_01jd3x5k2m9q8r7s6t5v4w3x2y" }),
    amount: z.number().int().openapi({ description: "Minor units", example: 500 }),
    currency: z.string().openapi({ example: "MYR" }),
    reason: z.string().nullable().openapi({ example: "Damaged in delivery" }),
    status: z.enum(refundStatuses).openapi({ description: "pending until Fiuu settles it", example: "pending" }),
    gateway: z
      .object({
        ref_id: z.string().openapi({ description: "The RefID sent to Fiuu (once)", example: "re01jd3y2b4c6d8e0f2g4h6j8k0m" }),
        refund_id: z.string().nullable().openapi({ description: "Fiuu's RefundID", example: "4471209" }),
      })
      .openapi({ description: "Fiuu's references" }),
    beneficiary: z
      .object({
        bank_code: z.string().openapi({ example: "MBB0228" }),
        country: z.string().openapi({ example: "MY" }),
        account_number: z.string().openapi({ example: "****6789", description: "Masked: the last 4 digits" }),
      })
      .nullable()
      .openapi({ description: "Where a non-card refund is paid, masked; null for a card refund" }),
    failure: z.object({ code: z.string().nullable(), message: z.string().nullable() }).nullable(),
    created_at: z.string().openapi({ format: "date-time", example: "2026-12-02T09:15:00.000Z" }),
    updated_at: z.string().openapi({ format: "date-time", example: "2026-12-02T09:15:02.000Z" }),
  })
  .openapi("Refund");

const Beneficiary = z
  .strictObject({
    bank_code: z
      .string()
      .regex(/^[A-Za-z0-9]{2,20}$/, "letters and digits, 2 to 20")
      .openapi({ example: "MBB0228", description: "The beneficiary's bank, as Fiuu codes it" }),
    // Fiuu refuses anything but letters, digits and spaces (PR018).
    name: z
      .string()
      .trim()
      .min(1)
      .max(100)
      .regex(/^[A-Za-z0-9 ]+$/, "letters, digits and spaces only (Fiuu's PR018)")
      .openapi({ example: "Tan Mei Ling" }),
    account_number: z
      .string()
      .regex(/^[0-9]{5,20}$/, "5 to 20 digits")
      .openapi({ example: "512345678901" }),
    country: z
      .string()
      .regex(/^[A-Z]{2}$/, "ISO 3166 alpha-2")
      .optional()
      .openapi({ example: "MY", description: "Default MY" }),
  })
  .openapi("RefundBeneficiary", {
    description:
      "Required when the payment was made through a non-card channel (FPX, e-wallet, DuitNow QR, cash): Fiuu pays such a refund into this bank account. Refused for a card payment. Stored encrypted; answers and webhooks show it masked.",
  });

const PaymentIdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" } }),
});
const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

const createRefundRoute = createRoute({
  method: "post",
  path: "/v1/payments/{id}/refunds",
  tags: ["Refunds"],
  summary: "Refund (part of) a succeeded payment",
  security: bearerAuth,
  middleware: [authenticate({ roles: ["service", "admin"] }), idempotency()] as const,
  request: {
    params: PaymentIdParam,
    headers: idempotencyHeader,
    body: {
      content: {
        "application/json": {
          schema: z
            .strictObject({
              amount: z
                .number()
                .int()
                .positive()
                .max(100_000_000)
                .optional()
                .openapi({ description: "Minor units; default the whole refundable rest" }),
              reason: z.string().trim().min(1).max(255).optional(),
              beneficiary: Beneficiary.optional(),
            })
            .openapi("CreateRefund"),
        },
      },
      required: false,
    },
  },
  description:
    "Roles `service` and `admin`, with an `Idempotency-Key`. Reserves the amount under the payment's lock, then sends the refund to Fiuu once. A refund whose answer is lost stays `pending` (its amount reserved) until Fiuu's status query says what happened; it is never resent blindly. 422 `beneficiary_required` when a non-card payment is refunded without `beneficiary`, `beneficiary_not_applicable` when a card payment is refunded with one.",
  responses: { 201: json(Refund, "Refund created; status as Fiuu answered"), ...problems(400, 401, 403, 404, 409, 422, 503) },
});

const listRoute = createRoute({
  method: "get",
  path: "/v1/payments/{id}/refunds",
  tags: ["Refunds"],
  summary: "A payment's refunds, oldest first",
  description: "Roles `service` and `admin`.",
  security: bearerAuth,
  middleware: [authenticate({ roles: ["service", "admin"] })] as const,
  request: { params: PaymentIdParam },
  responses: { 200: json(listOf(Refund), "Refunds"), ...problems(401, 403, 404) },
});

const getRoute = createRoute({
  method: "get",
  path: "/v1/refunds/{id}",
  tags: ["Refunds"],
  summary: "Read a refund",
  description: "Roles `service` and `admin`. A non-card refund's beneficiary is masked.",
  security: bearerAuth,
  middleware: [authenticate({ roles: ["service", "admin"] })] as const,
  request: { params: PaymentIdParam },
  responses: { 200: json(Refund, "The refund"), ...problems(401, 403, 404) },
});

/** Refunds: create (through Fiuu), list a payment's, read one. */
export function refundRoutes() {
  return createRouter()
    .openapi(createRefundRoute, async (c) => {
      const body = (await c.req.text()) ? c.req.valid("json") : {};
      const { actor, requestId } = auditContext(c);
      const refund = await createRefund(c.get("deps"), c.req.valid("param").id, body, { actor, requestId, createdBy: requireTokenSub(c) });
      return c.json(refundResource(refund), 201);
    })
    .openapi(listRoute, async (c) => {
      const rows = await listPaymentRefunds(c.get("deps").database.db, c.req.valid("param").id);
      // Every refund of the payment in one page: a payment has few.
      return c.json({ object: "list" as const, data: rows.map(refundResource), has_more: false }, 200);
    })
    .openapi(getRoute, async (c) => {
      const row = await getRefund(c.get("deps").database.db, c.req.valid("param").id);
      return c.json(refundResource(row), 200);
    });
}
