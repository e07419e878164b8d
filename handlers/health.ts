import { Hono } from "hono";
import type { AppDeps } from "../lib/domain/deps.js";
import { checkReadiness, expectedMigrations as shippedMigrations } from "../lib/ops/health.js";

export interface HealthOptions {
  /** True once the process is shutting down: /ready then answers 503 so no new traffic is sent. */
  shuttingDown?: () => boolean;
}

/** The health port's app: liveness (the process answers) and readiness (its dependencies do). */
export function createHealthApp(deps: AppDeps, options: HealthOptions = {}) {
  const expectedMigrations = shippedMigrations();
  const app = new Hono();
  // Alive until the process exits, shutdown included: a failing liveness probe would kill the drain.
  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/ready", async (c) => {
    if (options.shuttingDown?.()) return c.json({ status: "shutting_down" }, 503);
    const { ready, checks } = await checkReadiness(deps, expectedMigrations);
    return c.json({ status: ready ? "ready" : "not_ready", checks }, ready ? 200 : 503);
  });
  return app;
}
