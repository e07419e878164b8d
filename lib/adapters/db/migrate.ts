import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { createPostgresClient, queryRows, type DatabaseHandle } from "./client.js";

/** The drizzle/ folder: beside lib/ in the source tree, copied beside dist/lib by `npm run build`. */
export const drizzleDir = fileURLToPath(new URL("../../../drizzle/", import.meta.url));
const migrationsFolder = `${drizzleDir}migrations`;

/** How many migrations this build ships (the journal's entries). */
export function expectedMigrationCount(): number {
  const journal = JSON.parse(readFileSync(`${migrationsFolder}/meta/_journal.json`, "utf8")) as { entries: unknown[] };
  return journal.entries.length;
}

/**
 * Applies pending migrations, then the channel seed, then drizzle/privileges.sql (the runtime
 * roles' rights on what the migrations made), all as the connecting role: on PostgreSQL the owner
 * of drizzle/roles.sql (MIGRATION_DATABASE_URL). Replicas starting together take turns on a
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
  for (const file of ["seed.sql", "privileges.sql"]) {
    const path = `${drizzleDir}${file}`;
    if (existsSync(path)) await handle.exec(readFileSync(path, "utf8"));
  }
}

/** Who the migrations ran as, for the CLI: a superuser makes objects payment_owner does not own. */
export async function migrationRole(handle: DatabaseHandle): Promise<{ role: string; superuser: boolean; ownerExists: boolean }> {
  const [row] = await queryRows<{ role: string; superuser: boolean; owner_exists: boolean }>(
    handle.db,
    sql`select current_user as role, (select rolsuper from pg_roles where rolname = current_user) as superuser,
               exists (select from pg_roles where rolname = 'payment_owner') as owner_exists`,
  );
  return { role: row!.role, superuser: Boolean(row!.superuser), ownerExists: Boolean(row!.owner_exists) };
}

async function withMigrationLock(handle: DatabaseHandle, run: () => Promise<void>): Promise<void> {
  // Drizzle runs the migrations in a transaction of its own, so the lock is a session lock held
  // on a separate connection for as long as that takes, with the pool's URL and TLS.
  const { client: lock } = await createPostgresClient(handle.url!, handle.tls ?? {}, { max: 1, connect_timeout: 5, onnotice: () => {} });
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
    const rows = await queryRows<{ count: number }>(handle.db, sql`select count(*)::int as count from drizzle.__drizzle_migrations`);
    return Number(rows[0]?.count ?? 0);
  } catch (error) {
    // undefined_table / invalid_schema_name: never migrated.
    const code = (error as { code?: string; cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code;
    if (code === "42P01" || code === "3F000") return 0;
    throw error;
  }
}
