import { Hono } from "hono";
import type { AppDeps } from "../lib/context.js";

/** The metrics port's app: Prometheus text format from the service's own registry. */
export function createMetricsApp(deps: AppDeps) {
  const app = new Hono();
  app.get("/metrics", async (c) => {
    const { registry } = deps.metrics;
    return c.body(await registry.metrics(), 200, { "content-type": registry.contentType });
  });
  return app;
}
