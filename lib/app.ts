import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import type { AppDeps, AppEnv } from "./context.js";
import { ApiError, handleError, problemResponse } from "./errors.js";

const maxBodyBytes = 1024 * 1024;

/**
 * Builds the main API app from a dependency set. No I/O happens here: the same factory serves
 * the Node server, the functions build and the tests.
 */
export function createApp(deps: AppDeps) {
  const app = new Hono<AppEnv>();
  const { metrics, config } = deps;

  app.use(
    requestId({
      headerName: "X-Request-Id",
      // Accept a caller's id only when it is short and plain, so it cannot forge log lines.
      generator: () => crypto.randomUUID(),
      limitLength: 128,
    }),
  );
  app.use(async (c, next) => {
    c.set("deps", deps);
    c.set("log", deps.logger.child({ request_id: c.get("requestId") }));
    const started = performance.now();
    await next();
    const route = c.req.routePath === "/*" || !c.req.routePath ? "unmatched" : c.req.routePath;
    const labels = { method: c.req.method, route, status_code: String(c.res.status) };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, (performance.now() - started) / 1000);
  });
  app.use(
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'", "'unsafe-inline'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", "data:"],
        formAction: ["'self'", "https:", "http:"],
        frameAncestors: ["'none'"],
      },
    }),
  );
  app.use(
    cors({
      // Only listed origins; with none listed no cross-origin browser call is allowed.
      origin: (origin) => (config.allowedOrigins.includes(origin) ? origin : null),
      allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key", "X-Client-Secret", "X-Request-Id"],
      exposeHeaders: ["X-Request-Id", "Idempotency-Replayed", "Retry-After"],
      maxAge: 600,
    }),
  );
  app.use(
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: (c) => problemResponse(c, new ApiError("payload_too_large", `The request body exceeds ${maxBodyBytes} bytes.`)),
    }),
  );

  app.notFound((c) => problemResponse(c, new ApiError("not_found", `No route for ${c.req.method} ${c.req.path}.`)));
  app.onError(handleError);
  return app;
}

export type App = ReturnType<typeof createApp>;
