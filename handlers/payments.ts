import { createRoute, z } from "@hono/zod-openapi";
import { auditContext } from "../lib/http/context.js";
import { authenticate, requireTokenSub } from "../lib/http/auth/middleware.js";
import { idempotency } from "../lib/http/idempotency.js";
import { supportedCurrencies } from "../lib/core/money.js";
import { bearerAuth, clientSecretAuth, createRouter, idempotencyHeader, problems } from "../lib/http/openapi.js";
import { cancelPayment } from "../lib/domain/payments/cancel.js";
import { hostedForm, seamlessFields, startCheckout } from "../lib/domain/payments/checkout.js";
import { createPayment } from "../lib/domain/payments/create.js";
import { findPaymentFor, listPayments, paymentStatuses } from "../lib/domain/payments/queries.js";
import { checkoutUrl, paymentResource } from "../lib/domain/payments/resource.js";
import { listAnswer, listOf, pageQuery } from "../lib/http/paging.js";

const printable = /^[\x20-\x7e]+$/;

const CustomerInput = z.strictObject({
  name: z.string().trim().min(1).max(128),
  email: z.email().max(128),
  mobile: z
    .string()
    .regex(/^\+?[0-9][0-9 -]{5,30}$/, "must be a phone number")
    .optional(),
});

const CreatePaymentBody = z
  .strictObject({
    order_id: z.string().min(1).max(64).regex(printable, "must be printable characters"),
    amount: z.number().int().positive().max(100_000_000).openapi({ description: "Minor units: 1050 = RM 10.50", example: 1050 }),
    currency: z.enum(supportedCurrencies),
    description: z.string().trim().min(1).max(255),
    customer: CustomerInput,
    channel: z.string().min(1).max(40).optional().openapi({ description: "A code from GET /v1/payment-methods", example: "fpx" }),
    return_url: z
      .url({ protocol: /^https?$/ })
      .max(2048)
      .optional(),
    metadata: z
      .record(z.string().min(1).max(40), z.string().max(500))
      .refine((m) => Object.keys(m).length <= 20, "at most 20 keys")
      .optional(),
  })
  .openapi("CreatePayment");

const Customer = z.object({
  name: z.string().openapi({ example: "Siti Aminah" }),
  email: z.string().openapi({ example: "siti@example.my" }),
  mobile: z.string().nullable().openapi({ example: "+60174823915" }),
});
export const Payment = z
  .object({
    id: z.string().openapi({ example: "pay_01jd3x5k2m9q8r7s6t5v4w3x2y" }),
    object: z.literal("payment"),
    order_id: z.string().openapi({ description: "The shop's order", example: "ORDER-1042" }),
    amount: z.number().int().openapi({ description: "Minor units: 1050 = RM 10.50", example: 1050 }),
    currency: z.string().openapi({ example: "MYR" }),
    status: z.enum(paymentStatuses).openapi({
      description: "created → pending → succeeded | failed; created → cancelled | expired; conflicted when Fiuu reports another amount or currency",
      example: "succeeded",
    }),
    channel: z.string().nullable().openapi({ description: "The channel asked for at creation or checkout, if any", example: "fpx" }),
    description: z.string().openapi({ example: "2 x Kopi O" }),
    customer: Customer.nullable().openapi({
      description: "Masked for a client secret and in webhooks; null once the customer's personal data is erased (retention or on request)",
    }),
    return_url: z
      .string()
      .nullable()
      .openapi({ description: "Where the shopper goes back to, with payment_id and status added", example: "https://shop.example.my/orders/1042" }),
    metadata: z.record(z.string(), z.string()).openapi({ example: { cart: "c_81723" } }),
    amount_refunded: z.number().int().openapi({ description: "Minor units refunded so far (succeeded refunds)", example: 0 }),
    gateway: z
      .object({
        order_id: z.string().openapi({ description: "The order id Fiuu knows the payment by", example: "pay01jd3x5k2m9q8r7s6t5v4w3x2y" }),
        tran_id: z.string().nullable().openapi({ description: "Fiuu's tranID", example: "30811572" }),
        appcode: z.string().nullable().openapi({ example: "123456" }),
        channel: z.string().nullable().openapi({ description: "The channel Fiuu reports it was paid with", example: "FPX_MB2U" }),
        paydate: z.string().nullable().openapi({ example: "2026-12-01 20:01:47" }),
      })
      .openapi({ description: "What Fiuu reported" }),
    failure: z
      .object({ code: z.string().nullable(), message: z.string().nullable() })
      .nullable()
      .openapi({ description: "Why it failed (Fiuu's error code and description); null unless failed", example: null }),
    erased_at: z.string().nullable().openapi({ description: "When the customer's personal data was erased; amounts, states and gateway ids stay" }),
    expires_at: z.string().openapi({
      format: "date-time",
      description: "When an unpaid payment expires (PAYMENT_TTL after creation)",
      example: "2026-12-01T12:30:00.000Z",
    }),
    created_at: z.string().openapi({ format: "date-time", example: "2026-12-01T12:00:00.000Z" }),
    updated_at: z.string().openapi({ format: "date-time", example: "2026-12-01T12:01:47.000Z" }),
  })
  .openapi("Payment");
const CreatedPayment = Payment.extend({
  client_secret: z
    .string()
    .openapi({ description: "For the checkout page only (X-Client-Secret); answered once, here", example: "cs_3q7Zr9kLw2XbV8nT5mYc1pHd" }),
  checkout_url: z.string().openapi({
    description: "The link that sends the shopper to Fiuu (/pay/{id}?client_secret=…)",
    example: "https://payments.example.my/pay/pay_01jd3x5k2m9q8r7s6t5v4w3x2y?client_secret=cs_3q7Zr9kLw2XbV8nT5mYc1pHd",
  }),
}).openapi("CreatedPayment");
const PaymentList = listOf(Payment).openapi("PaymentList");
const HostedFormSchema = z.object({ method: z.literal("POST"), url: z.string(), fields: z.record(z.string(), z.string()) }).openapi("HostedForm");

const IdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" } }),
});
const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

const createPaymentRoute = createRoute({
  method: "post",
  path: "/v1/payments",
  tags: ["Payments"],
  summary: "Create a payment for an order",
  description:
    "Role `service`, with an `Idempotency-Key`. The answer carries the payment's `client_secret` (only here) and `checkout_url`, the link that " +
    "sends the shopper to Fiuu. One order has at most one payment open or succeeded: another is 409 `order_has_payment`, naming it. " +
    "Rate limited per token (`RATE_LIMIT_PAYMENTS_PER_MINUTE`): 429 with `Retry-After`.",
  security: bearerAuth,
  middleware: [
    authenticate({ roles: ["service"] }),
    // The limit is counted in the idempotency claim's round trip.
    idempotency({
      rateLimit: { name: "create_payment", limit: (c) => c.get("deps").config.paymentsPerMinute, windowSeconds: 60, key: (c) => requireTokenSub(c) },
    }),
  ] as const,
  request: { headers: idempotencyHeader, body: { content: { "application/json": { schema: CreatePaymentBody } }, required: true } },
  responses: { 201: json(CreatedPayment, "Created"), ...problems(400, 401, 403, 409, 413, 422, 429, 503) },
});

const getPaymentRoute = createRoute({
  method: "get",
  path: "/v1/payments/{id}",
  tags: ["Payments"],
  summary: "Read a payment (customer details masked for a client secret)",
  description: "Roles `service` and `admin`, or the payment's client secret (that payment only; any other id is 404).",
  security: [...bearerAuth, ...clientSecretAuth],
  middleware: [authenticate({ roles: ["service", "admin"], clientSecret: true })] as const,
  request: { params: IdParam },
  responses: { 200: json(Payment, "The payment"), ...problems(401, 403, 404) },
});

const listPaymentsRoute = createRoute({
  method: "get",
  path: "/v1/payments",
  tags: ["Payments"],
  summary: "List payments, newest first",
  description:
    "Roles `service` and `admin`. Filter by `order_id` and `status`; pages of `limit`, the next one `starting_after` the last id while `has_more`.",
  security: bearerAuth,
  middleware: [authenticate({ roles: ["service", "admin"] })] as const,
  request: {
    query: z.object({
      order_id: z.string().min(1).max(64).optional(),
      status: z.enum(paymentStatuses).optional(),
      ...pageQuery,
    }),
  },
  responses: { 200: json(PaymentList, "A page of payments"), ...problems(400, 401, 403) },
});

const cancelPaymentRoute = createRoute({
  method: "post",
  path: "/v1/payments/{id}/cancel",
  tags: ["Payments"],
  summary: "Cancel a payment that has not been paid",
  description:
    "Role `service`, with an `Idempotency-Key`. Only a `created` payment can be cancelled; any other state is 409 `invalid_state`. Emits `payment.cancelled`.",
  security: bearerAuth,
  middleware: [authenticate({ roles: ["service"] }), idempotency()] as const,
  request: { params: IdParam, headers: idempotencyHeader },
  responses: { 200: json(Payment, "Cancelled"), ...problems(400, 401, 403, 404, 409, 422, 503) },
});

const checkoutRoute = createRoute({
  method: "post",
  path: "/v1/payments/{id}/checkout",
  tags: ["Checkout"],
  summary: "The signed form that sends the shopper to Fiuu's hosted page",
  description:
    "Role `service` or the payment's client secret. POST `fields` to `url` from the shopper's browser (the `/pay/{id}` page does exactly that). " +
    "A payment that can no longer be paid is 409 `invalid_state`.",
  security: [...bearerAuth, ...clientSecretAuth],
  middleware: [authenticate({ roles: ["service"], clientSecret: true })] as const,
  request: {
    params: IdParam,
    body: {
      content: { "application/json": { schema: z.strictObject({ channel: z.string().min(1).max(40).optional() }) } },
      required: false,
    },
  },
  responses: { 200: json(HostedFormSchema, "Submit these fields by POST to url"), ...problems(400, 401, 403, 404, 409) },
});

const SeamlessFields = z.record(z.string(), z.string()).openapi("SeamlessFields", {
  description:
    "mpsmerchantid, mpschannel (when chosen), mpsamount, mpsorderid, mpsbill_name, mpsbill_email, mpsbill_mobile (only when " +
    'the payment has a mobile number), mpsguest_checkout ("1", only when it lacks the name, email or mobile), mpsbill_desc, ' +
    "mpscurrency, mpscountry, mpslangcode, and the signature mpsvcode (there is no vcode field)",
  example: {
    mpsmerchantid: "SB_yourshop",
    mpsamount: "10.50",
    mpsorderid: "pay01jd3x5k2m9q8r7s6t5v4w3x2y",
    mpsbill_name: "Siti Aminah",
    mpsbill_email: "siti@example.my",
    mpsguest_checkout: "1",
    mpsbill_desc: "2 x Kopi O",
    mpscurrency: "MYR",
    mpscountry: "MY",
    mpslangcode: "en",
    mpsvcode: "f3d5496b444ae3d11e09fa92a753ac60",
  },
});

const seamlessRoute = createRoute({
  method: "get",
  path: "/v1/payments/{id}/seamless",
  tags: ["Checkout"],
  summary: "The mps* parameters for Fiuu's seamless script",
  description:
    "The hosted form's values under the names Fiuu's seamless script reads, signed as `mpsvcode`. A payment created " +
    "without a mobile number carries `mpsguest_checkout=1` and no `mpsbill_mobile` (Fiuu refuses empty or dummy buyer data).",
  security: [...bearerAuth, ...clientSecretAuth],
  middleware: [authenticate({ roles: ["service"], clientSecret: true })] as const,
  request: { params: IdParam, query: z.object({ channel: z.string().min(1).max(40).optional(), client_secret: z.string().optional() }) },
  responses: { 200: json(SeamlessFields, "Seamless parameters"), ...problems(400, 401, 403, 404, 409) },
});

/** Payments: create, read, list, cancel, and the signed checkout forms. */
export function paymentRoutes() {
  return createRouter()
    .openapi(createPaymentRoute, async (c) => {
      const deps = c.get("deps");
      const { actor, requestId } = auditContext(c);
      const input = c.req.valid("json");
      const { row, clientSecret } = await createPayment(deps, input, { actor, requestId, createdBy: requireTokenSub(c) });
      const customer = { name: input.customer.name, email: input.customer.email, mobile: input.customer.mobile ?? null };
      return c.json(
        {
          ...paymentResource(deps, row, { masked: false, customer }),
          client_secret: clientSecret,
          checkout_url: checkoutUrl(deps.config.publicUrl, row.id, clientSecret),
        },
        201,
      );
    })
    .openapi(getPaymentRoute, async (c) => {
      const principal = c.get("principal");
      const row = await findPaymentFor(c.get("deps").database.db, c.req.valid("param").id, principal);
      return c.json(paymentResource(c.get("deps"), row, { masked: principal.kind === "client" }), 200);
    })
    .openapi(listPaymentsRoute, async (c) => {
      const page = await listPayments(c.get("deps").database.db, c.req.valid("query"));
      return c.json(
        listAnswer(page, (row) => paymentResource(c.get("deps"), row, { masked: false })),
        200,
      );
    })
    .openapi(cancelPaymentRoute, async (c) => {
      const row = await cancelPayment(c.get("deps"), c.req.valid("param").id, auditContext(c));
      return c.json(paymentResource(c.get("deps"), row, { masked: false }), 200);
    })
    .openapi(checkoutRoute, async (c) => {
      const { id } = c.req.valid("param");
      const body = (await c.req.text()) ? c.req.valid("json") : {};
      const row = await startCheckout(c.get("deps"), id, c.get("principal"), { channel: body.channel, via: "api", ...auditContext(c, id) });
      return c.json(hostedForm(c.get("deps"), row), 200);
    })
    .openapi(seamlessRoute, async (c) => {
      const { id } = c.req.valid("param");
      const row = await startCheckout(c.get("deps"), id, c.get("principal"), {
        channel: c.req.valid("query").channel,
        via: "seamless",
        ...auditContext(c, id),
      });
      return c.json(seamlessFields(c.get("deps"), row), 200);
    });
}
