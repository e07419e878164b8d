import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { checkoutPageRoutes } from "../../handlers/checkout.js";
import { customerRoutes } from "../../handlers/customers.js";
import { demoRoutes } from "../../handlers/demo.js";
import { docsRoutes, registerWebhooks } from "../../handlers/docs.js";
import { eventRoutes } from "../../handlers/events.js";
import { fiuuRoutes } from "../../handlers/fiuu.js";
import { jobRoutes } from "../../handlers/jobs.js";
import { paymentMethodRoutes } from "../../handlers/payment-methods.js";
import { paymentRoutes } from "../../handlers/payments.js";
import { refundRoutes } from "../../handlers/refunds.js";
import type { Context } from "hono";
import type { AppEnv } from "../http/context.js";
import type { AppDeps } from "../domain/deps.js";
import { ApiError } from "../core/errors.js";
import { handleError, problemResponse } from "../http/problem.js";
import type { SandboxFactory } from "../adapters/fiuu/sandbox/mount.js";
import { apiDescription, apiTags, createRouter, registerSecuritySchemes } from "../http/openapi.js";
import { refuseUndecodableInput } from "../http/input.js";

const maxBodyBytes = 1024 * 1024;
const payloadTooLarge = (c: Context<AppEnv>) =>
  problemResponse(c, new ApiError("payload_too_large", `The request body exceeds ${maxBodyBytes} bytes.`));

/**
 * Builds the main API app from a dependency set. No I/O happens here: the same factory serves
 * the Node server, the functions build and the tests.
 */
export interface AppOptions {
  extraRoutes?: (app: ReturnType<typeof createRouter>) => void;
  /**
   * The local Fiuu sandbox (lib/adapters/fiuu/sandbox/mount.ts), mounted at /sandbox/fiuu when the
   * configuration asks for it (FIUU_LOCAL_SANDBOX). Passed in rather than imported here, so that
   * the production bundles do not contain it.
   */
  fiuuSandbox?: SandboxFactory;
}

export function createApp(deps: AppDeps, options: AppOptions = {}) {
  const app = createRouter();
  const { metrics, config } = deps;

  app.use(
    requestId({
      headerName: "X-Request-Id",
      // A caller's id is kept only when short and plain (word characters, - and =): it cannot forge log lines.
      generator: () => crypto.randomUUID(),
      limitLength: 128,
    }),
  );
  app.use(async (c, next) => {
    c.set("deps", deps);
    const started = performance.now();
    await next();
    const route = c.req.routePath === "/*" || !c.req.routePath ? "unmatched" : c.req.routePath;
    const labels = { method: c.req.method, route, status_code: String(c.res.status) };
    const seconds = (performance.now() - started) / 1000;
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, seconds);
    deps.logger.info(
      { request_id: c.get("requestId"), method: c.req.method, route, status: c.res.status, duration_ms: Math.round(seconds * 1000) },
      "request",
    );
  });
  app.use(
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'", "'unsafe-inline'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", "data:"],
        // The checkout page posts its signed form to Fiuu's host.
        formAction: ["'self'", "https:", "http:"],
        frameAncestors: ["'none'"],
      },
    }),
  );
  const corsHeaders = cors({
    // Only listed origins; with none listed no cross-origin browser call is allowed.
    origin: (origin) => (config.allowedOrigins.includes(origin) ? origin : null),
    allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key", "X-Client-Secret", "X-Request-Id"],
    exposeHeaders: ["X-Request-Id", "Idempotency-Replayed", "Retry-After"],
    maxAge: 600,
  });
  app.use(async (c, next) => {
    // Only a browser's request carries Origin. The others (shop backends, Fiuu) skip cors(), whose
    // header writes around a finished response make the Node adapter rebuild it as a stream; they
    // get the same `Vary: Origin` written straight onto the answer.
    if (c.req.header("origin") !== undefined) return corsHeaders(c, next);
    await next();
    try {
      c.res.headers.append("Vary", "Origin");
    } catch {
      c.header("Vary", "Origin", { append: true }); // an answer with immutable headers is copied
    }
  });
  const limitStreamedBody = bodyLimit({ maxSize: maxBodyBytes, onError: (c) => payloadTooLarge(c) });
  app.use(async (c, next) => {
    // A declared length is checked from the header; bodyLimit() (which reads `raw.body`, building
    // a stream) is kept for bodies whose size is not declared up front (chunked).
    const length = c.req.header("content-length");
    if (length !== undefined && c.req.header("transfer-encoding") === undefined) {
      return Number(length) > maxBodyBytes ? payloadTooLarge(c) : next();
    }
    if (c.req.method === "GET" || c.req.method === "HEAD") return next();
    return limitStreamedBody(c, next);
  });
  app.use(refuseUndecodableInput());

  app.route("/", paymentRoutes());
  app.route("/", paymentMethodRoutes());
  app.route("/", refundRoutes());
  app.route("/", checkoutPageRoutes());
  app.route("/", fiuuRoutes());
  app.route("/", eventRoutes());
  app.route("/", customerRoutes());
  app.route("/", jobRoutes());
  options.extraRoutes?.(app);
  if (config.environment === "development" || config.environment === "test") {
    app.route("/", demoRoutes({ api: () => app }));
  }

  // The local sandbox plays Fiuu on this app itself (development, tests), reaching the service's
  // webhooks in-process as Fiuu would over the network.
  if (options.fiuuSandbox && usesLocalSandbox(config)) {
    app.route(
      "/sandbox/fiuu",
      options.fiuuSandbox(async (request) => app.fetch(request)),
    );
  }

  registerSecuritySchemes(app);
  registerWebhooks(app);
  let document: ReturnType<typeof app.getOpenAPI31Document> | undefined;
  // Built on the first request for it, once every route is registered.
  const openApiDocument = () => {
    document ??= app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: { title: "Payment service", version: "1.0.0", description: apiDescription() },
      tags: apiTags,
      servers: [{ url: config.publicUrl }],
    });
    return document as never;
  };
  app.route("/", docsRoutes(openApiDocument));

  app.notFound((c) => problemResponse(c, new ApiError("not_found", `No route for ${c.req.method} ${c.req.path}.`)));
  app.onError(handleError);
  return app;
}

export type App = ReturnType<typeof createApp>;

/** Whether the local Fiuu sandbox plays Fiuu (FIUU_LOCAL_SANDBOX; development and tests only). */
export function usesLocalSandbox(config: AppDeps["config"]): boolean {
  return !config.isProduction && config.fiuu.localSandbox;
}
