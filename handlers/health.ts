import { Hono } from "hono";
import type { AppDeps } from "../lib/context.js";
import { expectedMigrationCount } from "../lib/db/migrate.js";
import { checkReadiness } from "../lib/health.js";

/** The health port's app: liveness (the process answers) and readiness (its dependencies do). */
export function createHealthApp(deps: AppDeps) {
  const expectedMigrations = expectedMigrationCount();
  const app = new Hono();
  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/ready", async (c) => {
    const { ready, checks } = await checkReadiness(deps, expectedMigrations);
    return c.json({ status: ready ? "ready" : "not_ready", checks }, ready ? 200 : 503);
  });
  return app;
}
