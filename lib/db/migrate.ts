import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { queryRows, type DatabaseHandle } from "./client.js";

/** The drizzle/ folder: beside lib/ in the source tree, copied beside dist/lib by `npm run build`. */
export const drizzleDir = fileURLToPath(new URL("../../drizzle/", import.meta.url));
const migrationsFolder = `${drizzleDir}migrations`;

/** How many migrations this build ships (the journal's entries). */
export function expectedMigrationCount(): number {
  const journal = JSON.parse(readFileSync(`${migrationsFolder}/meta/_journal.json`, "utf8")) as { entries: unknown[] };
  return journal.entries.length;
}

/**
 * Applies pending migrations, then the channel seed. Replicas starting together take turns on a
 * session advisory lock, so only one of them runs a migration.
 */
export async function migrateDatabase(handle: DatabaseHandle): Promise<void> {
  const config = { migrationsFolder };
  if (handle.kind === "embedded") {
    const { migrate } = await import("drizzle-orm/pglite/migrator");
    await migrate(handle.db as never, config);
  } else {
    const { migrate } = await import("drizzle-orm/postgres-js/migrator");
    await withMigrationLock(handle, () => migrate(handle.db as never, config));
  }
  const seed = `${drizzleDir}seed.sql`;
  if (existsSync(seed)) await handle.exec(readFileSync(seed, "utf8"));
}

async function withMigrationLock(handle: DatabaseHandle, run: () => Promise<void>): Promise<void> {
  // Drizzle runs the migrations in a transaction of its own, so the lock is a session lock held
  // on a separate connection for as long as that takes.
  const { default: postgres } = await import("postgres");
  const lock = postgres(handle.url!, { max: 1, onnotice: () => {} });
  try {
    await lock`select pg_advisory_lock(727370000)`;
    await run();
  } finally {
    await lock.end({ timeout: 5 });
  }
}

/** How many migrations the database has applied (0 when it has never been migrated). */
export async function appliedMigrationCount(handle: DatabaseHandle): Promise<number> {
  try {
    const rows = await queryRows<{ count: number }>(
      handle.db,
      sql`select count(*)::int as count from drizzle.__drizzle_migrations`,
    );
    return Number(rows[0]?.count ?? 0);
  } catch (error) {
    // undefined_table / invalid_schema_name: never migrated.
    const code = (error as { code?: string; cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code;
    if (code === "42P01" || code === "3F000") return 0;
    throw error;
  }
}
