import type { AppDeps } from "../domain/deps.js";
import { clearDatabaseStats, databasePoolSize, readDatabaseStats, recordDatabaseStats } from "../adapters/db/metrics.js";
import { checkReadiness } from "./health.js";

export interface ScrapeRefresherOptions {
  /** Migrations this build ships, for the readiness check. */
  expectedMigrations: number;
  /** Readings younger than this are served from the gauges as they are (default 15 s). */
  maxAgeMs?: number;
  /** Longest a scrape waits for a refresh in flight before answering with what it has (default HEALTH_CHECK_TIMEOUT). */
  waitMs?: number;
  /** Monotonic milliseconds; tests pass their own. */
  clock?: () => number;
}

/**
 * Keeps the scrape-time gauges (readiness_check_up, db_size_bytes, db_pool_connections,
 * db_pool_max_connections, webhook_deliveries_*) fresh: at most one refresh per maxAgeMs, shared
 * by every scrape that arrives meanwhile, so a scrape storm costs the database nothing extra.
 */
export function createScrapeRefresher(deps: AppDeps, options: ScrapeRefresherOptions) {
  const maxAgeMs = options.maxAgeMs ?? 15_000;
  const waitMs = options.waitMs ?? deps.config.health.timeoutMs;
  const clock = options.clock ?? (() => performance.now());
  const { metrics } = deps;
  let refreshedAt = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<void> | undefined;
  clearDatabaseStats(metrics);
  // Known without asking the database, so the pool's capacity is reported even while it is down.
  metrics.dbPoolMax.set(databasePoolSize(deps.database, deps.config));

  const refresh = async () => {
    const { checks } = await checkReadiness(deps, options.expectedMigrations);
    for (const [check, result] of Object.entries(checks)) metrics.readinessCheck.set({ check }, result.status === "ok" ? 1 : 0);
    if (checks.database?.status !== "ok") {
      clearDatabaseStats(metrics);
      return;
    }
    // select 1 and the migration count, as /ready runs them.
    metrics.dbQueryDuration.observe({ operation: "readiness" }, checks.database.duration_ms / 1000);
    try {
      recordDatabaseStats(metrics, await readDatabaseStats(deps, deps.now()));
    } catch (error) {
      clearDatabaseStats(metrics);
      deps.logger.warn({ error: error instanceof Error ? error.message : String(error) }, "could not read database metrics");
    }
  };

  return {
    /** Brings the scrape-time gauges up to date unless they are fresh, waiting at most waitMs. */
    async beforeScrape(): Promise<void> {
      if (!inFlight && clock() - refreshedAt < maxAgeMs) return;
      inFlight ??= refresh()
        .catch((error: unknown) => deps.logger.warn({ err: error }, "scrape-time metrics refresh failed"))
        .finally(() => {
          refreshedAt = clock();
          inFlight = undefined;
        });
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, waitMs);
        timer.unref?.();
      });
      await Promise.race([inFlight, waited]);
      clearTimeout(timer);
    },
  };
}
