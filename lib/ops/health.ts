import { sql } from "drizzle-orm";
import type { AppDeps } from "../domain/deps.js";
import { describeDatabaseError } from "../adapters/db/errors.js";
import { appliedMigrationCount, expectedMigrationCount } from "../adapters/db/migrate.js";

/** How many migrations this build ships: what readiness expects the database to have applied. */
export const expectedMigrations = (): number => expectedMigrationCount();

export interface CheckResult {
  status: "ok" | "failing";
  detail?: string;
  duration_ms: number;
}

async function timed(timeoutMs: number, check: () => Promise<string | undefined>): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const problem = await Promise.race([check(), timeout]);
    return { status: problem ? "failing" : "ok", ...(problem ? { detail: problem } : {}), duration_ms: elapsed(started) };
  } catch (error) {
    return { status: "failing", detail: (error as Error).message, duration_ms: elapsed(started) };
  } finally {
    clearTimeout(timer);
  }
}

const elapsed = (started: number) => Math.round(performance.now() - started);

/**
 * Readiness: the database answers and has every migration this build ships, and Redis answers.
 * Each check is bounded by HEALTH_CHECK_TIMEOUT so a hung dependency reads as failing, not as a hang.
 */
export async function checkReadiness(deps: AppDeps, expected: number): Promise<{ ready: boolean; checks: Record<string, CheckResult> }> {
  const timeoutMs = deps.config.health.timeoutMs;
  const [database, redis] = await Promise.all([
    timed(timeoutMs, async () => {
      try {
        await deps.database.db.execute(sql`select 1`);
        const applied = await appliedMigrationCount(deps.database);
        return applied < expected ? `migrations applied ${applied} of ${expected}; run "migrate up"` : undefined;
      } catch (error) {
        // "authentication failed: …", "certificate not trusted: …", "host unreachable: …": the cause, no secret.
        return describeDatabaseError(error).message;
      }
    }),
    timed(timeoutMs, async () => {
      const answer = await deps.redis.ping();
      return answer === "PONG" ? undefined : `unexpected answer ${answer}`;
    }),
  ]);
  return { ready: database.status === "ok" && redis.status === "ok", checks: { database, redis } };
}
