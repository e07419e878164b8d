import { Hono } from "hono";
import type { AppDeps } from "../lib/domain/deps.js";
import { expectedMigrations } from "../lib/ops/health.js";
import { createScrapeRefresher, type ScrapeRefresherOptions } from "../lib/ops/metrics-refresh.js";

/**
 * The metrics port's app: Prometheus text format from the service's own registry. The readiness
 * and database gauges are read at scrape time, at most once per 15 s (cached between scrapes).
 */
export function createMetricsApp(deps: AppDeps, options: Omit<ScrapeRefresherOptions, "expectedMigrations"> = {}) {
  const refresher = createScrapeRefresher(deps, { expectedMigrations: expectedMigrations(), ...options });
  const app = new Hono();
  app.get("/metrics", async (c) => {
    await refresher.beforeScrape();
    const { registry } = deps.metrics;
    return c.body(await registry.metrics(), 200, { "content-type": registry.contentType });
  });
  return app;
}
