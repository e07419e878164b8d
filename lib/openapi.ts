import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "./context.js";
import { ApiError } from "./errors.js";
import { findUnstorableText } from "./storable-text.js";

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
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string(),
    request_id: z.string().nullable(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .openapi("Problem");

/** Problem responses for a route's OpenAPI entry, by status. */
export function problems(...statuses: number[]) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      { description: problemDescriptions[status] ?? "Error", content: { "application/problem+json": { schema: ProblemSchema } } },
    ]),
  );
}

const problemDescriptions: Record<number, string> = {
  400: "Invalid request, or Idempotency-Key missing",
  401: "No or invalid credentials",
  403: "Credentials lack the role",
  404: "Not found",
  409: "Conflict: idempotency key in use, order has a payment, or invalid state",
  413: "Body over 1 MB",
  422: "Idempotency key reused, or amount exceeds the refundable amount",
  429: "Rate limited",
  503: "A dependency is unavailable",
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
    description: "HS256 JWT with claims sub, role (service | admin | system) and exp",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "clientSecret", {
    type: "apiKey",
    in: "header",
    name: "X-Client-Secret",
    description: "A payment's client_secret: reads that payment and starts its checkout, nothing else",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "clientSecretQuery", { type: "apiKey", in: "query", name: "client_secret" });
}
export const idempotencyHeader = z.object({
  "idempotency-key": z.string().min(1).max(255).openapi({ description: "Unique per operation; replays return the first answer for 24 h" }),
});
