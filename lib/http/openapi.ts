import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "./context.js";
import { ApiError, errorCatalog, type ErrorCode } from "../core/errors.js";
import { findUnstorableText } from "../core/text.js";

/** One validation hook for every route: bad input becomes a 400 invalid_request listing the fields. */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        throw new ApiError("invalid_request", "The request has invalid or missing fields.", {
          errors: result.error.issues.map((issue) => ({
            field: issue.path.length > 0 ? issue.path.join(".") : `(${result.target})`,
            message: issue.message,
          })),
        });
      }
      // Valid by its schema but not storable (NUL, a lone surrogate): refused here, not by the database.
      const unstorable = findUnstorableText(result.data);
      if (unstorable !== undefined) {
        throw new ApiError("invalid_request", "The request has invalid or missing fields.", {
          errors: [{ field: unstorable || `(${result.target})`, message: "must not contain NUL characters or unpaired surrogates" }],
        });
      }
    },
  });
}

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ description: "`/problems/<code>`", example: "/problems/invalid_request" }),
    title: z.string().openapi({ description: "Short, the same for every answer with this code", example: "Invalid request" }),
    status: z.number().int().openapi({ description: "The HTTP status, repeated", example: 400 }),
    detail: z
      .string()
      .openapi({ description: "What went wrong with this request, for a person", example: "The request has invalid or missing fields." }),
    code: z
      .enum(Object.keys(errorCatalog) as [ErrorCode, ...ErrorCode[]])
      .openapi({ description: "Machine-readable: branch on this, not on the text" }),
    request_id: z
      .string()
      .nullable()
      .openapi({ description: "The X-Request-Id of the request, for support and the logs", example: "0b8f6a2e-3c1d-4e5f-9a7b-2d4c6e8f0a1b" }),
    errors: z
      .array(
        z.object({ field: z.string().openapi({ example: "customer.email" }), message: z.string().openapi({ example: "Invalid email address" }) }),
      )
      .optional()
      .openapi({ description: "invalid_request only: one entry per field that failed" }),
  })
  .openapi("Problem", { description: "An RFC 9457 problem document: every error the API answers has this shape, as application/problem+json." });

/** The statuses every route can answer whatever it declares: a URL or body it cannot read, a body over 1 MB, a failure, a dependency down. */
const everyRouteStatuses = [400, 413, 500, 503];

/** Problem responses for a route's OpenAPI entry, by status; 400, 413, 500 and 503 are always added. */
export function problems(...statuses: number[]) {
  const all = [...new Set([...statuses, ...everyRouteStatuses])].sort((a, b) => a - b);
  return Object.fromEntries(
    all.map((status) => {
      const codes = (Object.keys(errorCatalog) as ErrorCode[]).filter((code) => errorCatalog[code][0] === status);
      const example = codes[0];
      const retryAfter = status === 429 || status === 503;
      return [
        status,
        {
          description: `${problemDescriptions[status] ?? "Error"}${codes.length ? ` (code ${codes.map((code) => `\`${code}\``).join(", ")})` : ""}`,
          ...(retryAfter
            ? { headers: { "Retry-After": { description: "Seconds to wait before trying again", schema: { type: "integer" as const } } } }
            : {}),
          content: {
            "application/problem+json": {
              schema: ProblemSchema,
              ...(example
                ? {
                    example: {
                      type: `/problems/${example}`,
                      title: errorCatalog[example][1],
                      status,
                      detail: problemExamples[example] ?? errorCatalog[example][1],
                      code: example,
                      request_id: "0b8f6a2e-3c1d-4e5f-9a7b-2d4c6e8f0a1b",
                      ...(example === "invalid_request" ? { errors: [{ field: "amount", message: "Too small: expected number to be >0" }] } : {}),
                    },
                  }
                : {}),
            },
          },
        },
      ];
    }),
  );
}

const problemDescriptions: Record<number, string> = {
  400: "Invalid request (a field, parameter or header), or Idempotency-Key missing",
  401: "No or invalid credentials",
  403: "The credentials lack the role, or a client secret where a token is needed",
  404: "Not found (or not visible to these credentials)",
  409: "Conflict: idempotency key in use, order has a payment, or invalid state",
  413: "Body over 1 MB",
  422: "Idempotency key reused with another request, or the refund cannot be made as asked",
  429: "Rate limited",
  500: "Unexpected failure; details are in the service's log under request_id",
  503: "A dependency (database, Redis) is unavailable",
};

const problemExamples: Partial<Record<ErrorCode, string>> = {
  invalid_request: "The request has invalid or missing fields.",
  unauthenticated: "Send Authorization: Bearer <token>.",
  forbidden: "The role admin may not call this endpoint.",
  not_found: "No payment pay_01jd3x5k2m9q8r7s6t5v4w3x2y.",
  idempotency_key_in_use: "A request with this Idempotency-Key is still being processed; retry shortly.",
  payload_too_large: "The request body exceeds 1048576 bytes.",
  idempotency_key_reused: "This Idempotency-Key was used with a different request.",
  rate_limited: "Too many requests; retry after the Retry-After seconds.",
  internal_error: "An unexpected error occurred.",
  unavailable: "A dependency of the service is unavailable; try again shortly.",
};

type SecurityRequirement = Record<string, string[]>;
export const bearerAuth: SecurityRequirement[] = [{ bearerAuth: [] }];
export const clientSecretAuth: SecurityRequirement[] = [{ clientSecret: [] }, { clientSecretQuery: [] }];

/** Declares the security schemes the routes name, on the app that serves the document. */
export function registerSecuritySchemes(app: ReturnType<typeof createRouter>) {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description:
      "`Authorization: Bearer <JWT>`, HS256 signed with `JWT_SECRET`, claims `sub` (who calls), `role` and `exp` all required. " +
      "Roles: `service` — a shop backend (creates, cancels and refunds payments); `admin` — operators (reads, refunds, the event log and redelivery); " +
      "`system` — schedulers calling `/jobs/*`. Each operation names the roles it accepts; another role is answered 403.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "clientSecret", {
    type: "apiKey",
    in: "header",
    name: "X-Client-Secret",
    description:
      "A payment's `client_secret` (from `POST /v1/payments`), for the shop's checkout page in the shopper's browser, which never holds a JWT: " +
      "it reads that one payment (customer details masked) and starts its checkout, nothing else.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "clientSecretQuery", {
    type: "apiKey",
    in: "query",
    name: "client_secret",
    description: "The same client secret as a query parameter, for links (`checkout_url`, `/pay/{id}`).",
  });
}

/** The tags of the document, in reading order, with what each group is for. */
export const apiTags = [
  { name: "Payments", description: "A shop backend (role `service`) creates a payment for an order, reads it, lists and cancels payments." },
  {
    name: "Checkout",
    description:
      "Sending the shopper to Fiuu: the channel catalogue, the signed form for Fiuu's hosted page and the parameters for its seamless script. " +
      "A checkout page calls these with the payment's client secret.",
  },
  { name: "Refunds", description: "Refunds of succeeded payments through Fiuu, whole or partial, and reading them." },
  { name: "Events", description: "The event log behind the outgoing webhooks, and redelivery (role `admin`)." },
  {
    name: "Jobs",
    description: "One batch of background work now, for schedulers (role `system`) where the Node server's own job loop does not run.",
  },
  {
    name: "Webhooks",
    description:
      "What the service POSTs to every `WEBHOOK_URLS` receiver ([Standard Webhooks](https://www.standardwebhooks.com/)): body `{ type, timestamp, data }`, " +
      "signed in the `webhook-signature` header. Verify it with `WEBHOOK_SECRET` (a `whsec_…` secret is base64-decoded, any other value used as its bytes): " +
      "HMAC-SHA256 over `<webhook-id>.<webhook-timestamp>.<body>`, base64, compared with each `v1,` signature; refuse timestamps more than a few minutes old. " +
      "`webhook-id` is the event id, the same on every retry: use it to process each event once. Any 2xx within `WEBHOOK_TIMEOUT` counts as delivered; " +
      "anything else is retried `WEBHOOK_RETRY_ATTEMPTS` times with growing delays, then kept for redelivery (`POST /v1/events/{id}/redeliver`).",
  },
];

/** The document's introduction (Markdown): amounts, authentication, idempotency, the error model with every code. */
export function apiDescription(): string {
  const rows = (Object.keys(errorCatalog) as ErrorCode[]).map((code) => `| ${errorCatalog[code][0]} | \`${code}\` | ${errorCatalog[code][1]} |`);
  return [
    "Payments for a shop through Fiuu (FPX, cards, e-wallets, DuitNow QR): create, check out, refund, and signed webhooks.",
    "",
    "JSON in and out. **Amounts are integers of minor units** (`1050` = RM 10.50). Ids are prefixed strings (`pay_…`, `re_…`, `evt_…`).",
    "",
    "## Authentication",
    "A shop backend, an operator or a scheduler sends `Authorization: Bearer <JWT>` (HS256 with `JWT_SECRET`; claims `sub`, `role`, `exp`):",
    "",
    "| role | who | may |",
    "|---|---|---|",
    "| `service` | a shop backend | create, read, list, cancel and refund payments; start a checkout |",
    "| `admin` | operators | read and list payments, refund, read the event log, redeliver webhooks |",
    "| `system` | schedulers (cron trigger, Kubernetes CronJob) | run `/jobs/*` batches |",
    "",
    "A shop's checkout page in the shopper's browser never holds a JWT: it holds the payment's `client_secret` (answered once, by `POST /v1/payments`), " +
      "sent as `X-Client-Secret` or `?client_secret=`. It reads that one payment, with the customer's details masked, and starts its checkout — nothing else. " +
      "Amounts are only ever set by a `service` caller, so no browser can choose what gets signed.",
    "",
    "## Idempotency",
    "`POST /v1/payments`, `POST /v1/payments/{id}/cancel` and `POST /v1/payments/{id}/refunds` require an `Idempotency-Key` header (up to 255 characters, " +
      "scoped to the token's `sub`, kept 24 h). A repeat answers the first status and body with `Idempotency-Replayed: true`; the same key with another " +
      "body is 422 `idempotency_key_reused`; a repeat while the first is still running is 409 `idempotency_key_in_use`.",
    "",
    "## Errors",
    "Every error is an [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) problem document, `application/problem+json`: " +
      "`{ type, title, status, detail, code, request_id, errors? }` (the `Problem` schema). Branch on `code`:",
    "",
    "| status | code | title |",
    "|---|---|---|",
    ...rows,
    "",
    "429 and 503 carry `Retry-After`. Every answer carries `X-Request-Id`.",
  ].join("\n");
}
export const idempotencyHeader = z.object({
  "idempotency-key": z.string().min(1).max(255).openapi({ description: "Unique per operation; replays return the first answer for 24 h" }),
});
